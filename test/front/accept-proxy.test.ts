/**
 * --accept-proxy through real sockets: a connection's PROXY header (v1, v2, split across packets, with TLVs) names the
 * client that the backend, the access log and the metrics see; anything else (no header, a bad one, a peer outside
 * --proxy-trusted, a header that never completes) is closed before a byte reaches Bun.serve, and counted.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { V2_SIGNATURE, encodeProxyHeader } from "../../src/net/proxy-protocol.ts";
import { parseIp } from "../../src/net/ip.ts";
import { stoppedAfterEach, waitFor } from "../helpers.ts";

const { backend, lbFor } = stoppedAfterEach({ "accept-proxy": true, "access-log": true });
const text = (s: string) => new TextEncoder().encode(s);
const GET = text("GET /who HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");

/** A backend answering with the client lb named (X-Forwarded-For) and the port of lb's connection to it. */
function whoBackend() {
  return backend("who", (request) => new Response(`for=${request.headers.get("x-forwarded-for")}`));
}

interface Reply {
  /** Everything the server sent before it closed. */
  text: string;
}

/**
 * Opens a raw connection to `port`, writes each piece as its own packet (the next after the server had time to read
 * the last), and resolves with what came back once the server closed the connection.
 */
async function exchange(port: number, pieces: Uint8Array[], gapMs = 30): Promise<Reply> {
  let received = "";
  const closed = Promise.withResolvers<void>();
  const socket: Socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_, bytes) => void (received += bytes.toString()),
      close: () => closed.resolve(),
      error: () => closed.resolve(),
    },
  });
  socket.setNoDelay(true);
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await Bun.sleep(gapMs); // the pieces' shape is the input: they must arrive apart
    socket.write(piece);
  }
  await closed.promise;
  return { text: received };
}

/** A chunked body's data (sizes in hex, each chunk followed by CRLF, a last chunk of 0). */
function dechunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; ; ) {
    const lineEnd = bytes.indexOf("\r\n", at);
    const size = parseInt(bytes.subarray(at, lineEnd).toString(), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** lb_proxy_protocol_connections_total by outcome, from /metrics. */
async function outcomes(adminUrl: string): Promise<Record<string, number>> {
  const body = await (await fetch(`${adminUrl}/metrics`)).text();
  return Object.fromEntries([...body.matchAll(/^lb_proxy_protocol_connections_total\{outcome="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

const v2Inet = (source: string, sourcePort: number, tlvs: number[] = []) => {
  const block = [...parseIp(source)!, 10, 0, 0, 1, sourcePort >> 8, sourcePort & 0xff, 0x01, 0xbb, ...tlvs];
  return Uint8Array.from([...V2_SIGNATURE, 0x21, 0x11, block.length >> 8, block.length & 0xff, ...block]);
};

describe("a valid header names the client", () => {
  test("v1: the backend, the access log and the metrics see the header's source, not the peer", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const header = encodeProxyHeader(1, { source: { address: "203.0.113.7", port: 4242 }, destination: { address: "192.0.2.1", port: 80 } });
    const reply = await exchange(lb.lb.port, [Buffer.concat([header, GET])]);
    expect(reply.text).toStartWith("HTTP/1.1 200");
    expect(reply.text).toEndWith("for=203.0.113.7");
    await waitFor(() => lb.access.length === 1, "the access line");
    expect(lb.access[0]!.client).toBe("203.0.113.7");
    expect(await outcomes(lb.lb.adminUrl!.origin)).toEqual({ accepted: 1 });
  });

  test("v2 with TLVs, split across packets inside the signature and inside the address block", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const header = Uint8Array.from([...V2_SIGNATURE.subarray(0, 5)]);
    const v6Block = [...parseIp("2001:db8::7")!, ...parseIp("2001:db8::1")!, 0x10, 0x00, 0x00, 0x50, 0x01, 0x00, 0x02, 0x68, 0x32];
    const rest = Uint8Array.from([...V2_SIGNATURE.subarray(5), 0x21, 0x21, 0, v6Block.length, ...v6Block]);
    const reply = await exchange(lb.lb.port, [header, rest.subarray(0, 20), Buffer.concat([rest.subarray(20), GET.subarray(0, 10)]), GET.subarray(10)]);
    expect(reply.text).toEndWith("for=2001:db8::7");
  });

  test("v2 LOCAL (the balancer's own health check) is served as coming from the peer itself", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const reply = await exchange(lb.lb.port, [Buffer.concat([encodeProxyHeader(2, null), GET])]);
    expect(reply.text).toEndWith("for=127.0.0.1");
    expect(await outcomes(lb.lb.adminUrl!.origin)).toEqual({ local: 1 });
  });

  test("keep-alive: every request of a connection is its client's; two connections from one client address:port keep apart backend connections", async () => {
    const peers: number[] = [];
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(request, s) {
        if (new URL(request.url).pathname === "/a") peers.push(s.requestIP(request)!.port);
        return new Response(`for=${request.headers.get("x-forwarded-for")}`);
      },
    });
    const lb = await lbFor([`http://127.0.0.1:${server.port}`]);
    try {
      const header = encodeProxyHeader(1, { source: { address: "198.51.100.3", port: 5000 }, destination: { address: "192.0.2.1", port: 80 } });
      const keepAlive = text("GET /a HTTP/1.1\r\nHost: test\r\n\r\n");
      const [a, b] = await Promise.all([
        exchange(lb.lb.port, [Buffer.concat([header, keepAlive]), keepAlive, GET], 100),
        exchange(lb.lb.port, [Buffer.concat([header, keepAlive]), GET], 100),
      ]);
      expect(a.text.match(/for=198\.51\.100\.3/g)).toHaveLength(3);
      expect(b.text.match(/for=198\.51\.100\.3/g)).toHaveLength(2);
      // The three keep-alive requests went over exactly two backend connections: one per client connection, although
      // both named the same client address and port (the last request of each says close: it gets one of its own).
      expect(peers).toHaveLength(3);
      expect(peers[0]).not.toBe(peers[1]);
      expect(new Set(peers).size).toBe(2);
    } finally {
      await server.stop(true);
    }
  });
});

describe("the header's address is the peer the edge policies judge", () => {
  const from = (address: string) => encodeProxyHeader(1, { source: { address, port: 4000 }, destination: { address: "192.0.2.1", port: 80 } });
  const withXff = text("GET /who HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n");

  test("--trusted-proxies: X-Forwarded-For counts from a trusted address the header named, not from another", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url], { "trusted-proxies": "203.0.113.0/24" });
    expect((await exchange(lb.lb.port, [Buffer.concat([from("203.0.113.7"), withXff])])).text).toContain("for=198.51.100.9, 203.0.113.7");
    expect((await exchange(lb.lb.port, [Buffer.concat([from("192.0.2.50"), withXff])])).text).toEndWith("for=192.0.2.50");
    await waitFor(() => lb.access.length === 2, "two access lines");
    expect(lb.access.map((entry) => entry.client)).toEqual(["198.51.100.9", "192.0.2.50"]);
  });

  test("--deny: a client the header names inside a denied range gets 403; the balancer's own address is not judged", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url], { deny: "192.0.2.0/24" });
    expect((await exchange(lb.lb.port, [Buffer.concat([from("192.0.2.50"), GET])])).text).toStartWith("HTTP/1.1 403");
    expect((await exchange(lb.lb.port, [Buffer.concat([from("198.51.100.9"), GET])])).text).toEndWith("for=198.51.100.9");
  });
});

describe("the relay passes bytes on whole, both ways, with backpressure", () => {
  test("a 8 MiB upload and its 8 MiB echo arrive intact, the answer read by a client slower than lb", async () => {
    const echo = backend("echo", async (request) => new Response(await request.arrayBuffer()));
    const lb = await lbFor([echo.url], { "max-body-size": "16mb" });
    const body = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 7919) % 251);
    const head = text(`POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    const received: Uint8Array[] = [];
    let size = 0;
    const closed = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: lb.lb.port,
      socket: {
        data(socket, bytes) {
          received.push(bytes);
          size += bytes.length;
          // A slow reader: each read stops the socket for a moment, so the relay meets a full client buffer.
          socket.pause();
          setTimeout(() => socket.resume(), 2);
        },
        drain: () => writes.drain(),
        close: () => closed.resolve(),
      },
    });
    const writes = new (class {
      rest = Buffer.concat([encodeProxyHeader(2, null), head, body]);
      drain() {
        const written = socket.write(this.rest);
        this.rest = this.rest.subarray(Math.max(0, written));
      }
    })();
    writes.drain();
    await closed.promise;
    const answer = Buffer.concat(received);
    expect(size).toBe(answer.length);
    const split = answer.indexOf("\r\n\r\n") + 4;
    const answerHead = answer.subarray(0, split).toString().toLowerCase();
    expect(answerHead).toStartWith("http/1.1 200");
    const echoed = answerHead.includes("transfer-encoding: chunked") ? dechunk(answer.subarray(split)) : answer.subarray(split);
    expect(echoed.length).toBe(body.length);
    expect(Buffer.compare(echoed, body)).toBe(0);
  }, 30_000);
});

describe("anything else is closed before Bun.serve sees a byte, and counted", () => {
  test.each<[string, Uint8Array[], string]>([
    ["no header at all (plain HTTP)", [GET], "invalid"],
    ["a damaged v2 signature", [Uint8Array.from([...V2_SIGNATURE.subarray(0, 11), 0x0b, 0x21, 0x11, 0, 12, ...new Array(12).fill(1)]), GET], "invalid"],
    ["v1 TCP4 with IPv6 addresses (family mismatch)", [text("PROXY TCP4 2001:db8::7 2001:db8::1 1 2\r\n"), GET], "invalid"],
    ["v2 INET with 8 address bytes (family mismatch)", [Uint8Array.from([...V2_SIGNATURE, 0x21, 0x11, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]), GET], "invalid"],
    ["a v1 header over 107 bytes", [text(`PROXY TCP4 ${"9".repeat(110)}`)], "invalid"],
  ])("%s", async (_, pieces, outcome) => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const reply = await exchange(lb.lb.port, pieces);
    expect(reply.text).toBe("");
    expect(who.seen.filter((r) => r.path === "/who")).toHaveLength(0);
    expect(await outcomes(lb.lb.adminUrl!.origin)).toEqual({ [outcome]: 1 });
    expect(lb.logs.some((line) => line.startsWith("debug: closed a connection from 127.0.0.1"))).toBe(true);
  });

  test("a header cut short by the client's close (truncated)", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const socket = await Bun.connect({ hostname: "127.0.0.1", port: lb.lb.port, socket: { data() {} } });
    socket.end(v2Inet("192.0.2.7", 1).subarray(0, 20));
    await waitFor(async () => (await outcomes(lb.lb.adminUrl!.origin)).truncated === 1, "a truncated header counted");
    expect(who.seen.filter((r) => r.path === "/who")).toHaveLength(0);
  });

  test("a connection reset before its header was read (HAProxy's plain `check`: a LOCAL header, then a reset) is counted: truncated, or local when lb read the header first", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    const script = `import socket,struct
for header in (b"", bytes.fromhex("${Buffer.from(encodeProxyHeader(2, null)).toString("hex")}")):
    s=socket.create_connection(("127.0.0.1", ${lb.lb.port})); s.sendall(header)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()`;
    expect(await Bun.spawn(["python3", "-c", script]).exited).toBe(0);
    await waitFor(async () => {
      const counted = await outcomes(lb.lb.adminUrl!.origin);
      return (counted.truncated ?? 0) + (counted.local ?? 0) === 2;
    }, "both reset connections counted");
    expect(who.seen.filter((r) => r.path === "/who")).toHaveLength(0);
  });

  test("a peer outside --proxy-trusted, even with a valid header", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url], { "proxy-trusted": "10.0.0.0/8,fd00::/8" });
    const reply = await exchange(lb.lb.port, [Buffer.concat([v2Inet("192.0.2.7", 1), GET])]);
    expect(reply.text).toBe("");
    expect(who.seen.filter((r) => r.path === "/who")).toHaveLength(0);
    expect(await outcomes(lb.lb.adminUrl!.origin)).toEqual({ untrusted: 1 });
  });

  test("a header that does not complete within --client-timeout", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url], { "client-timeout": "1s" });
    const started = performance.now();
    const reply = await exchange(lb.lb.port, [text("PROXY TCP4 192.0.2.7 ")]);
    const waited = performance.now() - started;
    expect(reply.text).toBe("");
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(4000);
    expect(await outcomes(lb.lb.adminUrl!.origin)).toEqual({ timeout: 1 });
  });
});

/** This process's TCP sockets on 127.0.0.1 (from /proc: lb runs in the test's process), as local and remote ports. */
async function ownLoopbackSockets(): Promise<Array<{ local: number; remote: number; listening: boolean }>> {
  const { readdirSync, readlinkSync } = await import("node:fs");
  const inodes = new Set(readdirSync("/proc/self/fd").map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`).match(/^socket:\[(\d+)\]$/)?.[1]; } catch { return undefined; } }));
  const loopback = "0100007F";
  return (await Bun.file("/proc/self/net/tcp").text()).split("\n").slice(1).flatMap((line) => {
    const [, localText = "", remoteText = "", state, , , , , , inode] = line.trim().split(/\s+/);
    const [localIp, local] = localText.split(":");
    const remote = remoteText.split(":")[1];
    if (localIp !== loopback || !inodes.has(inode)) return [];
    return [{ local: parseInt(local!, 16), remote: parseInt(remote!, 16), listening: state === "0A" }];
  });
}

describe("the relay's loopback port", () => {
  test("a local process that connects from another loopback address with a relay connection's port gets 403, not that client's identity", async () => {
    const who = whoBackend();
    const lb = await lbFor([who.url]);
    // A client behind the relay, its connection kept open (keep-alive).
    const header = encodeProxyHeader(1, { source: { address: "203.0.113.5", port: 4000 }, destination: { address: "192.0.2.1", port: 80 } });
    const answered = Promise.withResolvers<void>();
    const client = await Bun.connect({ hostname: "127.0.0.1", port: lb.lb.port, socket: { data: () => answered.resolve() } });
    client.write(Buffer.concat([header, text("GET /who HTTP/1.1\r\nHost: test\r\n\r\n")]));
    await answered.promise;
    try {
      // The relay's connection to Bun.serve: the one socket of this process whose peer is a loopback listener other
      // than lb's own ports and the backend's.
      const sockets = await ownLoopbackSockets();
      const known = new Set([lb.lb.port, Number(lb.lb.adminUrl!.port), Number(new URL(who.url).port)]);
      const inner = sockets.filter((s) => s.listening && !known.has(s.local)).map((s) => s.local);
      expect(inner).toHaveLength(1);
      const relay = sockets.filter((s) => !s.listening && s.remote === inner[0]);
      expect(relay).toHaveLength(1);
      // The same port from 127.0.0.2 (any loopback address is the host's own), straight to Bun.serve's port.
      const script = `import socket,sys
s=socket.socket(); s.bind(("127.0.0.2", ${relay[0]!.local})); s.connect(("127.0.0.1", ${inner[0]}))
s.sendall(b"GET /who HTTP/1.1\\r\\nHost: test\\r\\nConnection: close\\r\\n\\r\\n"); out=b""
while (d := s.recv(65536)): out += d
sys.stdout.write(out.decode())`;
      const python = Bun.spawn(["python3", "-c", script], { stdout: "pipe", stderr: "pipe" });
      const [answer, errors] = await Promise.all([new Response(python.stdout).text(), new Response(python.stderr).text()]);
      expect(errors).toBe("");
      expect(answer).toStartWith("HTTP/1.1 403");
      expect(answer).not.toContain("203.0.113.5");
    } finally {
      client.end();
    }
  });
});
