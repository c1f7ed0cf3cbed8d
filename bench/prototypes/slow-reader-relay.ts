/**
 * What a streamed answer costs in memory behind Bun.serve, one way of passing it on at a time, for
 * bench/slow-readers.sh (LB="bun bench/prototypes/slow-reader-relay.ts MODE"): a bare Bun.serve front and a
 * Bun.connect socket per request to the backend (Content-Length answers only, no keep-alive, no lb logic).
 *
 *   bun bench/prototypes/slow-reader-relay.ts MODE --port P --host H ... http://BACKEND   (lb's flags are ignored)
 *
 * MODE:
 *   stream      lb's way before the fix: a ReadableStream (highWaterMark 1), the backend socket paused when
 *               desiredSize <= 0 and resumed by pull
 *   stream0     the same with highWaterMark 0
 *   direct      a type:"direct" stream: each piece write()n, then flush(); while a flush is pending the backend is paused
 *   split       stream, each piece cut into 16 KiB copies (the socket's large reads never reach Bun.serve whole)
 *   generator   an async generator body that yields each piece and pauses the backend until Bun asks for the next
 * RCVBUF=n (any mode): the backend socket's SO_RCVBUF set to n through bun:ffi (Linux glibc), so Bun's reads of it
 * (up to 512 KiB at a time otherwise) stay small.
 * On SIGUSR1 it prints the pieces seen (count, largest, mean) to stderr.
 */
import type { Socket } from "bun";
import { dlopen, FFIType, ptr } from "bun:ffi";

/** RCVBUF=n: the backend socket's kernel receive buffer capped (setsockopt SO_RCVBUF, Linux glibc), so no read is large. */
const libc = process.env.RCVBUF ? dlopen("libc.so.6", { setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 } }) : null;
const RCVBUF = new Int32Array([Number(process.env.RCVBUF ?? 32768)]);

const mode = process.argv[2] ?? "stream";
const args = process.argv.slice(3);
const port = Number(args[args.indexOf("--port") + 1]);
const backend = new URL(args.at(-1)!);

let pieces = 0;
let largest = 0;
let total = 0;
const mib = (n: number) => `${Math.round(n / 1048576)} MiB`;
process.on("SIGUSR1", () => {
  const m = process.memoryUsage();
  process.stderr.write(`${mode}: ${pieces} pieces, largest ${largest}, mean ${Math.round(total / Math.max(1, pieces))}; rss ${mib(m.rss)}, heap ${mib(m.heapUsed)}/${mib(m.heapTotal)}, external ${mib(m.external)}, arrayBuffers ${mib(m.arrayBuffers)}\n`);
});

interface Upstream {
  head: Buffer;
  headDone: boolean;
  onHead: (status: number, length: number, rest: Buffer) => void;
  onPiece: (piece: Buffer) => void;
}

function open(path: string): Promise<{ status: number; length: number; first: Buffer; socket: Socket<Upstream>; upstream: Upstream }> {
  return new Promise((resolve, reject) => {
    const upstream: Upstream = { head: Buffer.alloc(0), headDone: false, onHead: () => {}, onPiece: () => {} };
    Bun.connect<Upstream>({
      hostname: backend.hostname,
      port: Number(backend.port),
      data: upstream,
      socket: {
        open(socket) {
          if (libc) libc.symbols.setsockopt((socket as unknown as { fd: number }).fd, 1, 8, ptr(RCVBUF), 4);
          socket.write(`GET ${path} HTTP/1.1\r\nhost: ${backend.host}\r\n\r\n`);
          upstream.onHead = (status, length, rest) => resolve({ status, length, first: rest, socket, upstream });
        },
        data(socket, bytes) {
          const u = socket.data;
          if (u.headDone) return u.onPiece(bytes);
          u.head = Buffer.concat([u.head, bytes]);
          const end = u.head.indexOf("\r\n\r\n");
          if (end < 0) return;
          u.headDone = true;
          const text = u.head.toString("latin1", 0, end);
          const length = Number(/content-length: *(\d+)/i.exec(text)?.[1] ?? 0);
          u.onHead(Number(text.slice(9, 12)), length, u.head.subarray(end + 4));
        },
        close() {},
        error() {},
        connectError: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

function count(piece: Uint8Array): void {
  pieces++;
  total += piece.byteLength;
  largest = Math.max(largest, piece.byteLength);
}

/** The body as lb passed it on before the fix (modes stream, stream0, split). */
function pulledStream(socket: Socket<Upstream>, upstream: Upstream, first: Buffer, length: number, highWaterMark: number, split: boolean): ReadableStream<Uint8Array> {
  let left = length;
  let paused = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const take = (piece: Buffer) => {
          count(piece);
          left -= piece.length;
          if (split) for (let at = 0; at < piece.length; at += 16384) controller.enqueue(Uint8Array.prototype.slice.call(piece, at, at + 16384));
          else controller.enqueue(piece);
          if (left <= 0) {
            controller.close();
            socket.end();
          } else if ((controller.desiredSize ?? 1) <= 0 && !paused) {
            paused = true;
            socket.pause();
          }
        };
        upstream.onPiece = take;
        if (first.length) take(first);
      },
      pull() {
        if (paused) {
          paused = false;
          socket.resume();
        }
      },
      cancel() {
        socket.terminate();
      },
    },
    { highWaterMark },
  );
}

/** A direct stream: written as pieces arrive; the backend paused while Bun has a flush pending. */
function directStream(socket: Socket<Upstream>, upstream: Upstream, first: Buffer, length: number): ReadableStream<Uint8Array> {
  let left = length;
  return new ReadableStream({
    type: "direct",
    async pull(controller: { write(data: Uint8Array): unknown; flush(): unknown; end(): unknown }) {
      let wake: (() => void) | null = null;
      let done = false;
      const take = (piece: Buffer) => {
        count(piece);
        left -= piece.length;
        controller.write(piece);
        const flushed = controller.flush();
        if (left <= 0) {
          done = true;
          socket.end();
          wake?.();
        } else if (flushed instanceof Promise) {
          socket.pause();
          void flushed.then(() => socket.resume(), () => socket.terminate());
        }
      };
      upstream.onPiece = take;
      if (first.length) take(first);
      if (!done) await new Promise<void>((resolve) => (wake = resolve));
      await controller.end();
    },
    cancel() {
      socket.terminate();
    },
  } as never);
}

/** An async generator: each piece yielded; the backend paused until Bun asks for the next. */
async function* generatorBody(socket: Socket<Upstream>, upstream: Upstream, first: Buffer, length: number): AsyncGenerator<Uint8Array> {
  let left = length;
  const queue: Buffer[] = first.length ? [first] : [];
  let wake: (() => void) | null = null;
  upstream.onPiece = (piece) => {
    queue.push(piece);
    socket.pause();
    wake?.();
  };
  try {
    while (left > 0) {
      if (queue.length === 0) {
        socket.resume();
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
      const piece = queue.shift()!;
      count(piece);
      left -= piece.length;
      yield piece;
    }
  } finally {
    socket.end();
  }
}

Bun.serve({
  port,
  hostname: "127.0.0.1",
  development: false,
  idleTimeout: 0,
  async fetch(request) {
    const path = new URL(request.url).pathname;
    const { status, length, first, socket, upstream } = await open(path);
    // NOLEN=1: no Content-Length, so Bun sends the answer chunked (as lb does for a chunked backend answer).
    const headers: Record<string, string> = process.env.NOLEN ? { "content-type": "application/octet-stream" } : { "content-length": String(length), "content-type": "application/octet-stream" };
    if (length <= first.length) {
      socket.end();
      return new Response(first, { status, headers });
    }
    switch (mode) {
      case "direct":
        return new Response(directStream(socket, upstream, first, length), { status, headers });
      case "generator":
        return new Response(generatorBody(socket, upstream, first, length) as unknown as ReadableStream<Uint8Array>, { status, headers });
      default:
        return new Response(pulledStream(socket, upstream, first, length, mode === "stream0" ? 0 : 1, mode === "split"), { status, headers });
    }
  },
});
// GC_MS=n: a full collection every n ms, to tell garbage waiting for the collector from memory still in use.
if (process.env.GC_MS) setInterval(() => Bun.gc(true), Number(process.env.GC_MS));
process.stderr.write(`relay (${mode}) on ${port} → ${backend.host}\n`);
