/**
 * A backend that serves one big answer with TCP backpressure, for bench/slow-readers.sh:
 *   bun bench/download-backend.ts <port> [size-bytes]        (4 MiB by default; listens on 127.0.0.1)
 *   GET /cl       → size bytes of 'x' with a Content-Length
 *   GET /chunked  → the same bytes chunked (64 KiB chunks)
 *   GET /hold     → the head of /cl, then nothing (what a stream costs a proxy with no data in flight)
 *   anything else → "ok\n" (health checks)
 * It is a raw Bun.listen server, not Bun.serve, so that it holds no more than one 64 KiB piece per connection beyond
 * the kernel's socket buffer: it writes the next piece only when the socket took the last one (the drain event), as a
 * file server does. Keep-alive: requests on one connection are answered in turn.
 */
import type { Socket } from "bun";

const port = Number(process.argv[2]);
const size = Number(process.argv[3] ?? 4 * 1024 * 1024);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !Number.isInteger(size) || size <= 0) {
  process.stderr.write("usage: bun bench/download-backend.ts <port> [size-bytes]\n");
  process.exit(2);
}

const PIECE = 64 * 1024;
const piece = Buffer.alloc(PIECE, "x");
const chunkedPiece = Buffer.concat([Buffer.from(`${PIECE.toString(16)}\r\n`), piece, Buffer.from("\r\n")]);
const LAST_CHUNK = Buffer.from("0\r\n\r\n");
const heads = {
  cl: Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\n\r\n`),
  chunked: Buffer.from("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"),
  ok: Buffer.from("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"),
};

interface Download {
  /** Request bytes not yet answered (a head may come in pieces, or several at once). */
  pending: Buffer;
  /** What is still to write for the answer in progress: the bytes that did not fit, then `left` body bytes. */
  unsent: Buffer | null;
  left: number;
  chunked: boolean;
}

/** Writes until the socket is full or the answer is out; then answers the next request already read. */
function pump(socket: Socket<Download>): void {
  const d = socket.data;
  for (;;) {
    if (!d.unsent) {
      if (d.left > 0) {
        const n = Math.min(PIECE, d.left);
        d.left -= n;
        d.unsent = d.chunked ? (n === PIECE ? chunkedPiece : Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), piece.subarray(0, n), Buffer.from("\r\n")])) : piece.subarray(0, n);
        if (d.left === 0 && d.chunked) d.unsent = Buffer.concat([d.unsent, LAST_CHUNK]);
      } else if (!nextRequest(d)) return;
    }
    const unsent: Buffer = d.unsent!;
    const written = socket.write(unsent);
    if (written < 0) return;
    if (written < unsent.length) {
      d.unsent = unsent.subarray(written);
      return; // the drain event calls again
    }
    d.unsent = null;
  }
}

/** Starts the answer to the next complete request in `pending`; false when there is none. */
function nextRequest(d: Download): boolean {
  const end = d.pending.indexOf("\r\n\r\n");
  if (end < 0) return false;
  const line = d.pending.toString("latin1", 0, d.pending.indexOf("\r\n"));
  d.pending = d.pending.subarray(end + 4);
  const path = line.split(" ")[1] ?? "/";
  d.chunked = path === "/chunked";
  d.left = path === "/cl" || d.chunked ? size : 0;
  d.unsent = path === "/cl" || path === "/hold" ? heads.cl : d.chunked ? heads.chunked : heads.ok;
  return true;
}

Bun.listen<Download>({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(socket) {
      socket.data = { pending: Buffer.alloc(0), unsent: null, left: 0, chunked: false };
    },
    data(socket, bytes) {
      const d = socket.data;
      d.pending = d.pending.length ? Buffer.concat([d.pending, bytes]) : bytes;
      if (!d.unsent && d.left === 0) pump(socket);
    },
    drain: pump,
    error() {},
  },
});
process.stderr.write(`download backend listening on http://127.0.0.1:${port} (${size} bytes)\n`);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0));
