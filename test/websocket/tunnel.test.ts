/** WebSocket tunnels through lb, against a real WebSocket echo backend. */
import { afterAll, expect, test } from "bun:test";
import type { ServerWebSocket } from "bun";
import { deadPort, rawRequest, startTestLb, waitFor } from "../helpers.ts";

interface Seen {
  closes: Array<{ code: number; reason: string }>;
  sockets: Set<ServerWebSocket<unknown>>;
}

/** Echoes every frame; says hello first; picks the "chat" subprotocol when offered; records how clients closed. */
function echoBackend(name: string) {
  const seen: Seen = { closes: [], sockets: new Set() };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request, srv) {
      if (request.headers.get("upgrade") !== "websocket") return new Response("ok");
      const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
      const headers = offered.includes("chat") ? { "sec-websocket-protocol": "chat" } : undefined;
      return srv.upgrade(request, { headers }) ? undefined : new Response("no", { status: 400 });
    },
    websocket: {
      maxPayloadLength: 64 * 1024 * 1024,
      open(ws) {
        seen.sockets.add(ws);
        ws.send(`hello from ${name}`);
      },
      message(ws, message) {
        if (message === "close-please") ws.close(4002, "server bye");
        else ws.send(message);
      },
      close(ws, code, reason) {
        seen.sockets.delete(ws);
        seen.closes.push({ code, reason });
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, seen, stop: () => server.stop(true) };
}

const a = echoBackend("a");
const b = echoBackend("b");
const lb = await startTestLb([a.url, b.url], { "health-interval": "1m" });
const wsUrl = lb.url.replace("http", "ws");
afterAll(async () => {
  await lb.stop();
  await a.stop();
  await b.stop();
});

/** A client with its frames queued, so a test can await the next one. */
async function connect(path = "/chat", protocols?: string[]) {
  const ws = new WebSocket(wsUrl + path, protocols);
  ws.binaryType = "arraybuffer";
  const frames: Array<string | ArrayBuffer> = [];
  const waiters: Array<() => void> = [];
  ws.onmessage = (event) => {
    frames.push(event.data);
    waiters.shift()?.();
  };
  const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  const next = async () => {
    while (frames.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
    return frames.shift()!;
  };
  return { ws, next, closed };
}

test("a conversation of many text and binary messages both ways, with the backend's greeting first", async () => {
  const client = await connect();
  expect(await client.next()).toMatch(/^hello from [ab]$/);
  for (let i = 0; i < 200; i++) {
    client.ws.send(`message ${i}`);
    expect(await client.next()).toBe(`message ${i}`);
    const bytes = new Uint8Array([i, 255 - i, 7]);
    client.ws.send(bytes);
    expect(new Uint8Array((await client.next()) as ArrayBuffer)).toEqual(bytes);
  }
  client.ws.close(4001, "bye");
  expect((await client.closed).code).toBe(4001);
});

test("large binary frames arrive intact", async () => {
  const client = await connect();
  await client.next();
  const big = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
  client.ws.send(big);
  expect(Buffer.from((await client.next()) as ArrayBuffer).equals(Buffer.from(big))).toBe(true);
  client.ws.close();
});

test("the subprotocol the backend chose, and close codes and reasons, pass through both ways", async () => {
  const client = await connect("/proto", ["chat", "superchat"]);
  expect(client.ws.protocol).toBe("chat");
  await client.next();
  client.ws.send("close-please");
  const closed = await client.closed;
  expect(closed.code).toBe(4002);
  expect(closed.reason).toBe("server bye");

  const second = await connect();
  const greeting = (await second.next()) as string;
  const backend = greeting.endsWith("a") ? a : b;
  const before = backend.seen.closes.length;
  second.ws.close(4003, "client bye");
  await second.closed;
  const deadline = Date.now() + 2000;
  while (backend.seen.closes.length === before && Date.now() < deadline) await Bun.sleep(10);
  expect(backend.seen.closes.at(-1)).toEqual({ code: 4003, reason: "client bye" });
});

test("a backend that goes away mid-session closes the client's socket", async () => {
  const c = echoBackend("c");
  const lbC = await startTestLb([c.url], { "health-interval": "1m" });
  try {
    const ws = new WebSocket(lbC.url.replace("http", "ws") + "/x");
    const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
    await new Promise((resolve) => (ws.onmessage = resolve));
    await c.stop();
    const event = await closed;
    expect(event.code).toBeGreaterThanOrEqual(1000);
    expect(lbC.lb.pool.backends[0]!.inflight).toBe(0);
  } finally {
    await lbC.stop();
  }
});

test("a dead backend gives a 502 before any upgrade, and a live one is tried next", async () => {
  const dead = `http://127.0.0.1:${deadPort()}`;
  const deadOnly = await startTestLb([dead], { "health-interval": "1m" });
  try {
    // Its health check failed, so it is out of rotation: 503. Force it in to see the handshake failure itself.
    deadOnly.lb.pool.recordCheck(deadOnly.lb.pool.backends[0]!, { ok: true, reason: "forced" });
    const handshake = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    expect(await rawRequest(deadOnly.lb.port, handshake)).toStartWith("HTTP/1.1 502");
  } finally {
    await deadOnly.stop();
  }
  const mixed = await startTestLb([dead, a.url], { "health-interval": "1m" });
  try {
    mixed.lb.pool.recordCheck(mixed.lb.pool.backends[0]!, { ok: true, reason: "forced" });
    const ws = new WebSocket(mixed.url.replace("http", "ws") + "/ws");
    const first = await new Promise<MessageEvent>((resolve, reject) => {
      ws.onmessage = resolve;
      ws.onerror = () => reject(new Error("did not open"));
    });
    expect(first.data).toBe("hello from a");
    ws.close();
  } finally {
    await mixed.stop();
  }
});

test("many concurrent sessions, each with its own conversation; counted as connections in metrics", async () => {
  const sessions = await Promise.all(Array.from({ length: 50 }, () => connect()));
  await Promise.all(
    sessions.map(async (session, n) => {
      await session.next();
      for (let i = 0; i < 20; i++) {
        session.ws.send(`${n}:${i}`);
        expect(await session.next()).toBe(`${n}:${i}`);
      }
    }),
  );
  const metrics = await (await fetch(`${lb.lb.adminUrl!.origin}/metrics`)).text();
  const active = [...metrics.matchAll(/^lb_websocket_connections_active\{backend="[^"]+",pool="default"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  expect(active).toBe(50);
  expect(metrics).not.toMatch(/^lb_requests_total\{[^}]*code="101"/m);
  // ...but `lb backends list` and the admin API count each tunnel among the backend's requests.
  expect(lb.lb.pool.backends.reduce((sum, backend) => sum + backend.stats.requests, 0)).toBeGreaterThanOrEqual(50);
  await Promise.all(
    sessions.map(async (session) => {
      session.ws.close();
      await session.closed;
    }),
  );
  // Each client's close reaches its backend: no tunnel is left half open.
  await waitFor(() => a.seen.sockets.size + b.seen.sockets.size === 0, "every backend socket to close");
});

/**
 * A backend that speaks WebSocket by hand: it answers the handshake without selecting a subprotocol (as RFC 6455
 * allows) — or with 403 when the path is /forbidden — then sends one text frame.
 */
function noProtocolBackend() {
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        const head = data.toString();
        if (head.startsWith("GET /forbidden ")) return void socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        if (!/^upgrade: websocket/im.test(head)) return void socket.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        const key = /^sec-websocket-key: *(\S+)/im.exec(head)![1]!;
        const accept = new Bun.CryptoHasher("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        const hello = "hello, no subprotocol";
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
        socket.write(new Uint8Array([0x81, hello.length, ...Buffer.from(hello)]));
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

/**
 * Python's websockets client (a real, independent client; Debian's python3-websockets, hence Debian's python3),
 * offering "chat": what it was answered, or its error.
 */
async function pythonClient(url: string): Promise<string> {
  const script = `
import asyncio, sys, websockets
async def main():
    try:
        async with websockets.connect(sys.argv[1], subprotocols=["chat"]) as ws:
            print("subprotocol", ws.subprotocol, "got", await ws.recv())
    except Exception as error:
        print("failed", type(error).__name__, error)
asyncio.run(main())
`;
  const proc = Bun.spawn(["/usr/bin/python3", "-c", script, url], { stdout: "pipe", stderr: "inherit" });
  return (await new Response(proc.stdout).text()).trim();
}

test("a backend that selects none of the offered subprotocols: the client gets its answer as it is (Python websockets)", async () => {
  const backend = noProtocolBackend();
  const viaLb = await startTestLb([backend.url], { "health-interval": "1m" });
  try {
    const direct = await pythonClient(backend.url.replace("http", "ws") + "/ws");
    expect(direct).toBe("subprotocol None got hello, no subprotocol");
    expect(await pythonClient(viaLb.url.replace("http", "ws") + "/ws")).toBe(direct);
    // lb does not invent one either (Bun.serve would answer with the first one offered unless told otherwise).
    const handshake =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: superchat, other\r\n\r\n";
    const answer = await rawRequest(viaLb.lb.port, handshake, 300);
    expect(answer).toStartWith("HTTP/1.1 101");
    expect(answer.toLowerCase()).not.toContain("sec-websocket-protocol");
    // A handshake the backend refuses is a 502 from lb, and the log says why.
    expect(await pythonClient(viaLb.url.replace("http", "ws") + "/forbidden")).toContain("502");
    expect(viaLb.logs.find((l) => l.includes("refused the WebSocket handshake for /forbidden"))).toMatch(/: .*101/);
  } finally {
    await viaLb.stop();
    await backend.stop();
  }
});
