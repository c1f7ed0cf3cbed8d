/**
 * A client that reads a big answer slowly (or not at all) must hold the backend back, not make lb keep the answer:
 * what lb holds per streamed answer is bounded, beyond the kernel's socket buffers. Measured by what a raw backend
 * manages to write (the bytes its socket took), not by lb's memory, so that the test is deterministic. Real sockets:
 * a Bun.listen backend, lb in-process, a node:net client.
 */
import { describe, expect, test } from "bun:test";
import { connect } from "node:net";
import type { Socket } from "bun";
import { stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, lbFor } = stoppedAfterEach();

const ANSWER_BYTES = 64 * 1024 * 1024;
const PIECE = Buffer.alloc(64 * 1024, "x");
/**
 * Text that does not compress, for the answer lb compresses: random bytes, repeated farther apart than gzip's 32 KiB
 * window sees, so the client gets as many bytes as the backend sent.
 */
const RANDOM_PIECE = Buffer.from(crypto.getRandomValues(new Uint8Array(64 * 1024)));
const chunkOf = (piece: Buffer) => Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]);
const LAST_CHUNK = Buffer.from("0\r\n\r\n");
/** What lb may hold of one answer while its client is behind: a few pieces of the backend's, not the answer. */
const HELD_LIMIT_BYTES = 256 * 1024;
/**
 * The same while lb compresses the answer: a piece may also be in the encoder (being compressed while the last one
 * waits for the client); a piece is one read from the backend, larger when lb reads late on a busy machine (up to
 * 426 KiB held was seen there, 160-200 KiB on a quiet one). Still a sixty-fourth of the answer.
 */
const HELD_COMPRESSING_LIMIT_BYTES = 1024 * 1024;

/**
 * Bytes in the kernel's queues of the TCP connections on these ports (Recv-Q plus Send-Q of both ends, from `ss`):
 * what is on its way between the backend and the client without being held by any process.
 */
function kernelQueuedBytes(ports: number[]): number {
  const filter = ports.map((port) => `sport = :${port} or dport = :${port}`).join(" or ");
  const out = Bun.spawnSync(["ss", "-tnH", "state", "established", `( ${filter} )`]).stdout.toString();
  let queued = 0;
  for (const line of out.trim().split("\n")) {
    const [recvQ, sendQ] = line.trim().split(/\s+/);
    queued += Number(recvQ ?? 0) + Number(sendQ ?? 0);
  }
  return queued;
}

interface Download {
  /** Bytes the socket has taken so far (head, chunk framing and body). */
  sent: number;
  /** Body pieces still to write. */
  piecesLeft: number;
  unsent: Buffer | null;
  chunked: boolean;
  /** One piece of the body as written: framed as a chunk when chunked. */
  piece: Buffer;
}

/**
 * A backend that answers GET /big with ANSWER_BYTES, writing only what its socket takes (as a file server does);
 * `compressible`: random text that lb compresses, else bytes it leaves alone.
 */
function bigAnswerBackend(chunked: boolean, compressible = false): { port: number; url: string; sent: () => number } {
  let download: Download | null = null;
  const pump = (socket: Socket<Download>) => {
    const d = socket.data;
    for (;;) {
      if (!d.unsent) {
        if (d.piecesLeft === 0) return;
        d.piecesLeft--;
        d.unsent = d.chunked && d.piecesLeft === 0 ? Buffer.concat([d.piece, LAST_CHUNK]) : d.piece;
      }
      const taken = socket.write(d.unsent);
      if (taken < 0) return;
      d.sent += taken;
      d.unsent = taken < d.unsent.length ? d.unsent.subarray(taken) : null;
      if (d.unsent) return; // the drain event calls again
    }
  };
  const listener = Bun.listen<Download>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        const piece = compressible ? RANDOM_PIECE : PIECE;
        socket.data = { sent: 0, piecesLeft: 0, unsent: null, chunked, piece: chunked ? chunkOf(piece) : piece };
      },
      data(socket, request) {
        if (!request.toString("latin1").startsWith("GET /big")) {
          socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"); // health checks
          return;
        }
        download = socket.data;
        const framing = chunked ? "transfer-encoding: chunked" : `content-length: ${ANSWER_BYTES}`;
        const type = compressible ? "text/plain" : "application/octet-stream";
        socket.data.unsent = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\n${framing}\r\n\r\n`);
        socket.data.piecesLeft = ANSWER_BYTES / PIECE.length;
        pump(socket);
      },
      drain: pump,
      error() {},
    },
  });
  cleanup.push(() => listener.stop(true));
  return { port: listener.port, url: `http://127.0.0.1:${listener.port}`, sent: () => download?.sent ?? 0 };
}

/** Resolves once `read()` has stayed the same for `quietMs` (the pipe is full), at most `deadlineMs` from now. */
async function whenSettled(read: () => number, quietMs: number, deadlineMs: number): Promise<number> {
  const deadline = performance.now() + deadlineMs;
  let last = read();
  let since = performance.now();
  while (performance.now() < deadline) {
    await Bun.sleep(50);
    const now = read();
    if (now !== last) [last, since] = [now, performance.now()];
    else if (performance.now() - since >= quietMs) return now;
  }
  return read();
}

describe("a client that reads a big answer slowly", () => {
  for (const framing of ["Content-Length", "chunked", "chunked, compressed"] as const) {
    test(`holds the backend back (${framing}): lb keeps under 256 KiB of the answer beyond the kernel's buffers, and the client then gets it all`, async () => {
      const compressed = framing === "chunked, compressed";
      const backend = bigAnswerBackend(framing !== "Content-Length", compressed);
      const lb = await lbFor([backend.url], { compress: compressed });
      const lbPort = Number(new URL(lb.url).port);
      const client = connect(lbPort, "127.0.0.1");
      cleanup.push(() => client.destroy());
      let received = 0;
      let head = "";
      client.on("data", (data: Buffer) => {
        if (head.length < 1024) head += data.toString("latin1", 0, 1024);
        received += data.length;
        client.pause(); // one read, then nothing until resumed
      });
      client.write(`GET /big HTTP/1.1\r\nhost: lb\r\naccept-encoding: gzip\r\n\r\n`);
      await waitFor(() => backend.sent() > 0 && received > 0, "the answer to start");
      expect(head.toLowerCase().includes("content-encoding: gzip")).toBe(compressed);
      const sent = await whenSettled(backend.sent, 1000, 15_000);
      expect(sent).toBeLessThan(ANSWER_BYTES / 2); // held back at all
      // What left the backend is in the client, in a kernel queue between them, or in lb.
      const heldByLb = sent - received - kernelQueuedBytes([lbPort, backend.port]);
      expect(heldByLb).toBeLessThan(compressed ? HELD_COMPRESSING_LIMIT_BYTES : HELD_LIMIT_BYTES);
      // Nothing was lost by holding back: the client, reading again, gets the whole answer.
      client.removeAllListeners("data");
      client.on("data", (data: Buffer) => (received += data.length));
      client.resume();
      await waitFor(() => received > ANSWER_BYTES, () => `the whole answer (${received} bytes so far)`, 30_000);
    }, 60_000);
  }
});

describe("a chunked answer still arriving", () => {
  test("goes on one piece per backend read: the chunks of one read reach the client as one chunk, the rest later", async () => {
    // Bun holds every piece it is given until the client takes it, and a decoded chunk is a view that pins its whole
    // read: the chunks of one read are joined in place, so a slow client costs lb what it costs for a Content-Length.
    const CHUNKS = 8;
    const DATA = Buffer.alloc(1000, "y");
    const burst = Buffer.concat(Array.from({ length: CHUNKS }, () => Buffer.concat([Buffer.from("3e8\r\n"), DATA, Buffer.from("\r\n")])));
    let answering: Socket<undefined> | null = null;
    const listener = Bun.listen<undefined>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, request) {
          if (!request.toString("latin1").startsWith("GET /burst")) {
            socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"); // health checks
            return;
          }
          answering = socket;
          // The head and eight chunks in one write (one read for lb); the last chunk only once the client has them.
          socket.write(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"), burst]));
        },
        error() {},
      },
    });
    cleanup.push(() => listener.stop(true));
    const lb = await lbFor([`http://127.0.0.1:${listener.port}`]);
    const client = connect(Number(new URL(lb.url).port), "127.0.0.1");
    cleanup.push(() => client.destroy());
    let received = Buffer.alloc(0);
    client.on("data", (data: Buffer) => (received = Buffer.concat([received, data])));
    client.write("GET /burst HTTP/1.1\r\nhost: lb\r\n\r\n");
    const body = () => received.subarray(received.indexOf("\r\n\r\n") + 4).toString("latin1");
    await waitFor(() => received.includes("\r\n\r\n") && body().split("y").length > CHUNKS * DATA.length, () => `the eight chunks (${received.length} bytes so far)`);
    expect(body().slice(0, 6)).toBe(`${(CHUNKS * DATA.length).toString(16)}\r\n`); // one chunk of 8,000 bytes
    answering!.write("0\r\n\r\n");
    await waitFor(() => body().endsWith("\r\n0\r\n\r\n"), "the answer's end");
    expect(body()).toBe(`1f40\r\n${"y".repeat(CHUNKS * DATA.length)}\r\n0\r\n\r\n`);
  });
});
