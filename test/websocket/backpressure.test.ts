/**
 * WebSocket flow control through lb: a client that reads slowly while the backend sends 100 MiB. lb must stop reading
 * the backend (TCP backpressure reaches it) rather than queue for the client: its memory stays flat, and every byte
 * arrives once the client reads again. lb runs as its own process so its memory can be read from /proc.
 */
import { afterAll, expect, test } from "bun:test";
import { type Socket, connect } from "node:net";
import { readFileSync } from "node:fs";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { spawnLb, waitFor } from "../helpers.ts";

const TOTAL_BYTES = 100 * 1024 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(0x61);

/** A WebSocket backend on a free port: upgrades go to `handlers`, anything else (health checks) gets "ok". */
function webSocketBackend(handlers: WebSocketHandler<undefined>): Server<undefined> {
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (request, server) => (request.headers.get("upgrade") === "websocket" && server.upgrade(request) ? undefined : new Response("ok")),
    websocket: handlers,
  });
}

/** A backend that, on each WebSocket, sends TOTAL_BYTES in 64 KiB messages as fast as the socket takes them, then closes. */
const drained = new Map<ServerWebSocket<unknown>, () => void>();
let backendSent = 0;
const backend = webSocketBackend({
  async open(ws) {
    while (backendSent < TOTAL_BYTES) {
      // -1: queued beyond the socket; wait for its drain before sending more (a well-behaved sender).
      if (ws.send(CHUNK) === -1) await new Promise<void>((resolve) => drained.set(ws, resolve));
      backendSent += CHUNK.byteLength;
    }
    ws.close(1000, "all sent");
  },
  drain(ws) {
    drained.get(ws)?.();
    drained.delete(ws);
  },
  message() {},
});
afterAll(() => backend.stop(true));

/** A raw TCP client through lb's WebSocket handshake, once the 101 arrived; `early`: bytes that came right after it. */
async function openRawTunnel(port: number, path: string): Promise<{ socket: Socket; early: number }> {
  const socket = connect(port, "127.0.0.1");
  let head = "";
  const onHead = (data: Buffer) => void (head += data.toString("latin1"));
  socket.on("data", onHead);
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  await waitFor(() => head.includes("\r\n\r\n"), "the 101 answer");
  socket.off("data", onHead);
  expect(head).toStartWith("HTTP/1.1 101");
  return { socket, early: head.length - (head.indexOf("\r\n\r\n") + 4) };
}

function rssMiB(pid: number): number {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
  return kb / 1024;
}

test("a slow reader: lb pauses the backend instead of buffering 100 MiB, and every byte arrives", async () => {
  const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--no-access-log", `http://127.0.0.1:${backend.port}`]);
  const port = Number(new URL(lb.url).port);
  try {
    const baseline = rssMiB(lb.proc.pid);
    const { socket, early } = await openRawTunnel(port, "/stream");
    let received = early;
    let closed = false;
    socket.on("data", (data: Buffer) => void (received += data.length));
    socket.on("close", () => (closed = true));
    // The client stops reading for 3 s: the backend must stop too, well short of the 100 MiB.
    socket.pause();
    let peak = 0;
    for (let i = 0; i < 15; i++) {
      await Bun.sleep(200);
      peak = Math.max(peak, rssMiB(lb.proc.pid));
    }
    // What did leave the backend sits in socket buffers (loopback autotunes them to a few MiB each) and lb's 1 MiB.
    expect(backendSent).toBeLessThan(TOTAL_BYTES / 2);
    expect(peak - baseline).toBeLessThan(48);
    // Reading again: everything comes through, then the backend's close.
    socket.resume();
    await waitFor(() => closed, () => `the stream to end (${received} bytes so far)`, 60_000);
    expect(received).toBeGreaterThanOrEqual(TOTAL_BYTES);
    expect(backendSent).toBe(TOTAL_BYTES);
  } finally {
    await lb.kill();
  }
}, 90_000);

/** A backend that reads nothing for its first 3 s on each WebSocket, then counts every byte it gets. */
let backendReceived = 0;
const slowReader = webSocketBackend({
  open(ws) {
    ws.pause();
    setTimeout(() => ws.resume(), 3000);
  },
  message(_ws, message) {
  backendReceived += (message as Buffer).byteLength;
  },
});
afterAll(() => slowReader.stop(true));

/** One binary client frame of `payload` (masked with a zero key, which leaves the bytes as they are). */
function clientFrame(payload: Uint8Array): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(payload.byteLength), 2);
  return Buffer.concat([head, payload]);
}

test("a slow backend: lb stops reading the client instead of queueing for the backend, and every byte arrives", async () => {
  const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--no-access-log", `http://127.0.0.1:${slowReader.port}`]);
  const port = Number(new URL(lb.url).port);
  try {
    const baseline = rssMiB(lb.proc.pid);
    const { socket } = await openRawTunnel(port, "/upload");
    // Send as fast as the socket takes it: what lb does not read stays in the client's own buffers.
    const frame = clientFrame(CHUNK);
    let written = 0;
    let peak = 0;
    const started = performance.now();
    while (written < TOTAL_BYTES) {
      written += CHUNK.byteLength;
      if (!socket.write(frame)) await new Promise((resolve) => socket.once("drain", resolve));
      if (performance.now() - started < 2800) peak = Math.max(peak, rssMiB(lb.proc.pid));
    }
    expect(peak - baseline).toBeLessThan(48);
    await waitFor(() => backendReceived >= TOTAL_BYTES, () => `the backend to get all of it (${backendReceived} so far)`, 60_000);
    expect(backendReceived).toBe(TOTAL_BYTES);
    socket.destroy();
  } finally {
    await lb.kill();
  }
}, 90_000);
