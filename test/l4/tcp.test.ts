/**
 * [[tcp]] through the built dist/lb: real sockets on both sides, python3 and curl/openssl as clients, openssl s_server
 * as TLS backends that lb passes through without terminating.
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Socket, Subprocess } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LbProcess, ROOT, deadPort, selfSignedCertificate, spawnLb, waitFor } from "../helpers.ts";
import { clientHello, records, serverName } from "./hello-bytes.ts";

const binary = `${ROOT}dist/lb`;
// Each test starts dist/lb and real peers: on a machine busy with other work that alone may take seconds.
setDefaultTimeout(20_000);
const dir = mkdtempSync(join(tmpdir(), "lb-l4-"));
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  const build = Bun.spawn(["bun", `${ROOT}build.ts`], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  expect(await build.exited).toBe(0);
}, 60_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP echo server that passes a half-close on: what it read comes back, then its FIN. */
function echoBackend(): number {
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: { data: (socket, bytes) => void socket.write(bytes), end: (socket) => void socket.end() },
  });
  cleanups.push(() => server.stop(true));
  return server.port;
}

/** python3 as the client: sends `message`, shuts its sending side (half-close), prints all it reads until the FIN. */
async function halfCloseExchange(port: number, message: string): Promise<{ code: number; out: string }> {
  const script =
    "import socket,sys\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\ns.sendall(sys.argv[2].encode())\n" +
    "s.shutdown(socket.SHUT_WR)\nd=b''\nwhile True:\n  c=s.recv(65536)\n  if not c: break\n  d+=c\nsys.stdout.write(d.decode())\n";
  const proc = Bun.spawn(["python3", "-c", script, String(port), message], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, out };
}

async function startLb(config: string, extra: string[] = []): Promise<{ lb: LbProcess; path: string }> {
  const path = join(dir, `lb-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, config);
  const lb = await spawnLb(["--config", path, "--port", "0", "--host", "127.0.0.1", "--access-log", "--access-log-format", "json", ...extra], [binary]);
  cleanups.push(() => lb.kill("SIGKILL"));
  return { lb, path };
}

async function scrape(lb: LbProcess): Promise<string> {
  const admin = /admin (http:\/\/\S+)/.exec(lb.stderr.find((l) => /lb listening on/.test(l))!)![1];
  return (await fetch(`${admin}/metrics`)).text();
}

/** A client connection from this process: what it read so far, and its close. */
async function openClient(port: number) {
  let received = "";
  const closed = Promise.withResolvers<void>();
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_s, bytes) => void (received += bytes.toString("latin1")), close: () => closed.resolve() },
  });
  return { socket, received: () => received, closed: closed.promise };
}

const accessLines = (lb: LbProcess) => lb.stdout.filter((line) => line.includes('"kind":"tcp"')).map((line) => JSON.parse(line));

describe("TCP relay", () => {
  test("bytes go both ways, a client's half-close is passed on, balancing is per connection, each connection is logged", async () => {
    const [a, b] = [echoBackend(), echoBackend()];
    const listen = deadPort();
    const { lb } = await startLb(`[pools.echo]\nbackends = ["tcp://127.0.0.1:${a}", "tcp://127.0.0.1:${b}"]\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "echo"\n`);
    for (const message of ["one", "two", "three", "four"]) expect(await halfCloseExchange(listen, message)).toEqual({ code: 0, out: message });
    const lines = await waitFor(() => (accessLines(lb).length === 4 ? accessLines(lb) : undefined), "four access lines");
    expect(lines.map((l) => l.backend).sort()).toEqual([`127.0.0.1:${a}`, `127.0.0.1:${a}`, `127.0.0.1:${b}`, `127.0.0.1:${b}`].sort());
    const three = lines.find((l) => l.bytes_in === 5); // "three"
    expect(three).toMatchObject({ listen: `127.0.0.1:${listen}`, sni: "", pool: "echo", bytes_out: 5, end: "closed" });
    expect(three.client).toMatch(/^127\.0\.0\.1:\d+$/);
    const metrics = await scrape(lb);
    expect(metrics).toContain(`lb_tcp_connections_total{listen="127.0.0.1:${listen}"} 4`);
    expect(metrics).toContain(`lb_tcp_connections_active{listen="127.0.0.1:${listen}"} 0`);
    expect(metrics).toContain(`lb_tcp_bytes_total{listen="127.0.0.1:${listen}",direction="in"} 15`);
    expect(metrics).toContain(`lb_tcp_bytes_total{listen="127.0.0.1:${listen}",direction="out"} 15`);
  });

  test("a backend that refuses the connect is marked down and the next one takes the connection; none left closes it, counted", async () => {
    const live = Bun.listen({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket: { data: (s, b) => void s.write(b), end: (s) => void s.end() } });
    cleanups.push(() => live.stop(true));
    const dying = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const listen = deadPort();
    // Checked once an hour: after the first round, only a refused connect can take a backend out.
    const { lb } = await startLb(
      `[pools.echo]\nbackends = ["tcp://127.0.0.1:${dying.port}", "tcp://127.0.0.1:${live.port}"]\nhealth-interval = "1h"\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "echo"\n`,
    );
    dying.stop(true);
    for (let i = 0; i < 4; i++) expect(await halfCloseExchange(listen, `m${i}`)).toEqual({ code: 0, out: `m${i}` });
    const lines = await waitFor(() => (accessLines(lb).length === 4 ? accessLines(lb) : undefined), "four access lines");
    expect(lines.map((l) => l.backend)).toEqual(new Array(4).fill(`127.0.0.1:${live.port}`));
    await lb.waitForLine("stderr", new RegExp(`127\\.0\\.0\\.1:${dying.port} went down: connection refused`), 15_000);
    expect(await scrape(lb)).toContain(`lb_upstream_connect_errors_total{backend="tcp://127.0.0.1:${dying.port}",pool="echo"} 1`);
    live.stop(true);
    expect((await halfCloseExchange(listen, "nobody")).out).toBe(""); // closed, with no byte from any backend
    await waitFor(() => accessLines(lb).find((l) => l.end === "no-backend"), "the refused connection's line");
    expect(await scrape(lb)).toContain(`lb_tcp_rejected_total{listen="127.0.0.1:${listen}",reason="no-backend"} 1`);
  });

  test("a pool's own health-path checks its tcp:// backends by HTTP on the same port; without one, a TCP connect is the check", async () => {
    /** An HTTP server whose health path says 503: up by a connect, down by its HTTP check. */
    const httpBackend = () => {
      const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => new Response(new URL(request.url).pathname === "/healthz" ? "sick" : "hello", { status: new URL(request.url).pathname === "/healthz" ? 503 : 200 }) });
      cleanups.push(() => server.stop(true));
      return server.port;
    };
    const [byHttp, byConnect] = [httpBackend(), httpBackend()];
    const [checkedListen, connectedListen] = [deadPort(), deadPort()];
    const { lb } = await startLb(
      `[pools.checked]\nbackends = ["tcp://127.0.0.1:${byHttp}"]\nhealth-path = "/healthz"\n[pools.connected]\nbackends = ["tcp://127.0.0.1:${byConnect}"]\n\n` +
        `[[tcp]]\nlisten = "127.0.0.1:${checkedListen}"\npool = "checked"\n[[tcp]]\nlisten = "127.0.0.1:${connectedListen}"\npool = "connected"\n`,
    );
    const metrics = await scrape(lb);
    expect(metrics).toContain(`lb_backend_up{backend="tcp://127.0.0.1:${byHttp}",pool="checked"} 0`);
    expect(metrics).toContain(`lb_backend_up{backend="tcp://127.0.0.1:${byConnect}",pool="connected"} 1`);
    const through = (port: number) => Bun.spawn(["curl", "-s", "--max-time", "5", `http://127.0.0.1:${port}/`], { stdout: "pipe" });
    expect(await new Response(through(connectedListen).stdout).text()).toBe("hello");
    const refused = through(checkedListen);
    // Closed before any answer: an empty reply (52), or a reset when the request crossed lb's FIN (56).
    const outcome = { body: await new Response(refused.stdout).text(), code: await refused.exited };
    expect(outcome.body).toBe("");
    expect([52, 56]).toContain(outcome.code);
    await waitFor(() => accessLines(lb).find((l) => l.pool === "checked" && l.end === "no-backend"), "the refused connection's line");
  });

  test("a slow reader holds lb's memory bounded: the backend is paused, not buffered, and every byte arrives", async () => {
    const size = 96 * 1024 * 1024;
    const chunk = new Uint8Array(256 * 1024).fill(120);
    const server = Bun.listen<{ sent: number }>({
      hostname: "127.0.0.1",
      port: 0,
      data: { sent: 0 },
      socket: {
        open(socket) {
          socket.data = { sent: 0 };
          pump(socket);
        },
        drain: (socket) => pump(socket),
        data() {},
      },
    });
    function pump(socket: Socket<{ sent: number }>) {
      while (socket.data.sent < size) {
        const wanted = Math.min(chunk.length, size - socket.data.sent);
        const wrote = Math.max(0, socket.write(chunk.subarray(0, wanted)));
        socket.data.sent += wrote;
        if (wrote < wanted) return; // the rest on drain
      }
      socket.end();
    }
    cleanups.push(() => server.stop(true));
    const listen = deadPort();
    const { lb } = await startLb(`[pools.big]\nbackends = ["tcp://127.0.0.1:${server.port}"]\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "big"\n`);
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(require("node:fs").readFileSync(`/proc/${lb.proc.pid}/status`, "utf8"))![1]) * 1024;
    const before = rss();
    // python3 connects and reads nothing for 2 s, then reads all and prints the count.
    const script =
      "import socket,sys,time\ns=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,65536)\n" +
      "time.sleep(2)\nn=0\nwhile True:\n  c=s.recv(1<<20)\n  if not c: break\n  n+=len(c)\nprint(n)\n";
    const reader: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["python3", "-c", script, String(listen)], { stdout: "pipe", stderr: "pipe" });
    let peak = before;
    const sampling = setInterval(() => (peak = Math.max(peak, rss())), 50);
    const [out, code] = await Promise.all([new Response(reader.stdout).text(), reader.exited]);
    clearInterval(sampling);
    expect({ code, bytes: Number(out.trim()) }).toEqual({ code: 0, bytes: size });
    expect(peak - before).toBeLessThan(32 * 1024 * 1024);
  }, 30_000);

  test("a connection idle past idle-timeout is closed and logged so", async () => {
    const listen = deadPort();
    const { lb } = await startLb(`[pools.echo]\nbackends = ["tcp://127.0.0.1:${echoBackend()}"]\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "echo"\nidle-timeout = "1s"\n`);
    const client = await openClient(listen);
    client.socket.write("ping");
    await waitFor(() => client.received() === "ping" || undefined, "the echo");
    const started = performance.now();
    await client.closed;
    expect(performance.now() - started).toBeGreaterThan(900);
    const [line] = await waitFor(() => (accessLines(lb).length ? accessLines(lb) : undefined), "the access line");
    expect(line).toMatchObject({ end: "idle-timeout", bytes_in: 4, bytes_out: 4 });
  });

  test("a reload adds a listener and drains a dropped one: its open connection goes on, new ones are refused", async () => {
    const echo = echoBackend();
    const [first, second] = [deadPort(), deadPort()];
    const pool = `[pools.echo]\nbackends = ["tcp://127.0.0.1:${echo}"]\n\n`;
    const { lb, path } = await startLb(`drain-timeout = "20s"\n${pool}[[tcp]]\nlisten = "127.0.0.1:${first}"\npool = "echo"\n`);
    const kept = await openClient(first);
    kept.socket.write("before ");
    await waitFor(() => kept.received() === "before " || undefined, "the first echo");
    writeFileSync(path, `drain-timeout = "20s"\n${pool}[[tcp]]\nlisten = "127.0.0.1:${second}"\npool = "echo"\n`);
    lb.proc.kill("SIGHUP");
    await lb.waitForLine("stderr", new RegExp(`tcp listener 127.0.0.1:${first} removed`), 15_000);
    expect(await halfCloseExchange(second, "new listener")).toEqual({ code: 0, out: "new listener" });
    expect(await Bun.connect({ hostname: "127.0.0.1", port: first, socket: { data() {} } }).then(() => "connected", (e) => e.code)).toBe("ECONNREFUSED");
    kept.socket.write("after");
    await waitFor(() => kept.received() === "before after" || undefined, "the echo on the drained listener's connection");
    kept.socket.end();
    await kept.closed;
    await waitFor(async () => (await scrape(lb)).includes(`lb_tcp_connections_active{listen="127.0.0.1:${first}"} 0`) || undefined, "the drained connection to end");
    const line = await waitFor(() => accessLines(lb).find((l) => l.listen === `127.0.0.1:${first}`), "the drained connection's line");
    expect(line).toMatchObject({ bytes_in: 12, bytes_out: 12, end: "closed" });
  });

  test("a reload whose new listen address is taken is refused whole: the running listeners and config stay", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    cleanups.push(() => taken.stop(true));
    const [kept, added] = [deadPort(), deadPort()];
    const pool = `[pools.echo]\nbackends = ["tcp://127.0.0.1:${echoBackend()}"]\n`;
    const { lb, path } = await startLb(`${pool}[[tcp]]\nlisten = "127.0.0.1:${kept}"\npool = "echo"\n`);
    writeFileSync(path, `${pool}[[tcp]]\nlisten = "127.0.0.1:${added}"\npool = "echo"\n[[tcp]]\nlisten = "127.0.0.1:${taken.port}"\npool = "echo"\n`);
    lb.proc.kill("SIGHUP");
    await lb.waitForLine("stderr", new RegExp(`config reload rejected.*\\[\\[tcp\\]\\] listen 127.0.0.1:${taken.port}: cannot listen: the address is in use`), 15_000);
    expect(await halfCloseExchange(kept, "still here")).toEqual({ code: 0, out: "still here" });
    expect(await Bun.connect({ hostname: "127.0.0.1", port: added, socket: { data() {} } }).then(() => "connected", (e) => e.code)).toBe("ECONNREFUSED");
  });

  test("a connection to a pool a reload just added waits for the pool's first health round instead of being refused", async () => {
    // The new pool's first health check is answered only when the test says so: the client connects before that.
    const healthGate = Promise.withResolvers<void>();
    const slowHealth = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (request) => (new URL(request.url).pathname === "/healthz" ? (await healthGate.promise, new Response("ok")) : new Response("fresh")),
    });
    cleanups.push(() => (healthGate.resolve(), slowHealth.stop(true)));
    const [first, second] = [deadPort(), deadPort()];
    const echo = `[pools.echo]\nbackends = ["tcp://127.0.0.1:${echoBackend()}"]\n[[tcp]]\nlisten = "127.0.0.1:${first}"\npool = "echo"\n`;
    const { lb, path } = await startLb(echo);
    writeFileSync(path, `${echo}[pools.fresh]\nbackends = ["tcp://127.0.0.1:${slowHealth.port}"]\nhealth-path = "/healthz"\n[[tcp]]\nlisten = "127.0.0.1:${second}"\npool = "fresh"\n`);
    lb.proc.kill("SIGHUP");
    await lb.waitForLine("stderr", new RegExp(`tcp listening on 127.0.0.1:${second}`), 15_000);
    const run = Bun.spawn(["curl", "-s", "--max-time", "10", `http://127.0.0.1:${second}/`], { stdout: "pipe" });
    const answer = new Response(run.stdout).text();
    await waitFor(async () => (await scrape(lb)).includes(`lb_tcp_connections_active{listen="127.0.0.1:${second}"} 1`) || undefined, "the client's connection, held");
    healthGate.resolve();
    expect(await answer).toBe("fresh");
  });
});

describe("TLS passthrough by SNI", () => {
  /** openssl s_server with its own certificate, answering HTTP GETs with a status page (-www). */
  async function tlsBackend(name: string, altNames: string): Promise<{ port: number; cert: string }> {
    const { cert, key } = selfSignedCertificate(dir, name.replace("*", "wild"), altNames);
    const port = deadPort();
    const proc = Bun.spawn(["openssl", "s_server", "-accept", `127.0.0.1:${port}`, "-cert", cert, "-key", key, "-www", "-quiet"], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    cleanups.push(() => proc.kill("SIGKILL"));
    await waitFor(() => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => undefined), "openssl s_server to listen");
    return { port, cert };
  }

  const curl = (name: string, port: number, ca: string) =>
    Bun.spawn(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--resolve", `${name}:${port}:127.0.0.1`, "--cacert", ca, `https://${name}:${port}/`], { stdout: "pipe", stderr: "pipe" });

  test("each name reaches its own TLS backend, whose certificate the client verifies; a name nobody takes is closed and counted", async () => {
    const shop = await tlsBackend("shop.example.com", "DNS:shop.example.com");
    const wild = await tlsBackend("*.example.com", "DNS:*.example.com");
    const listen = deadPort();
    const { lb } = await startLb(
      `[pools.shop]\nbackends = ["tcp://127.0.0.1:${shop.port}"]\n[pools.wild]\nbackends = ["tcp://127.0.0.1:${wild.port}"]\n\n` +
        `[[tcp]]\nlisten = "127.0.0.1:${listen}"\nsni = ["shop.example.com"]\npool = "shop"\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\nsni = ["*.example.com"]\npool = "wild"\n`,
    );
    for (const [name, ca] of [["shop.example.com", shop.cert], ["api.example.com", wild.cert]] as const) {
      const run = curl(name, listen, ca);
      expect({ name, status: await new Response(run.stdout).text(), code: await run.exited }).toEqual({ name, status: "200", code: 0 });
    }
    // The certificate came from the backend: shop's name checked against the wildcard backend's CA fails verification.
    const wrongCa = curl("shop.example.com", listen, wild.cert);
    expect(await wrongCa.exited).toBe(60);
    // openssl s_client naming a server nobody takes: lb closes before any TLS answer.
    const stray = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${listen}`, "-servername", "other.test"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    expect(await stray.exited).not.toBe(0);
    const lines = await waitFor(() => (accessLines(lb).length >= 4 ? accessLines(lb) : undefined), "four access lines");
    expect(lines.filter((l) => l.sni === "shop.example.com").map((l) => l.pool)).toEqual(["shop", "shop"]);
    expect(lines.find((l) => l.sni === "api.example.com")).toMatchObject({ pool: "wild", backend: `127.0.0.1:${wild.port}`, end: "closed" });
    expect(lines.find((l) => l.sni === "other.test")).toMatchObject({ backend: "-", end: "no-sni-match" });
    expect(await scrape(lb)).toContain(`lb_tcp_rejected_total{listen="127.0.0.1:${listen}",reason="no-sni-match"} 1`);
  }, 30_000);
});

describe("routing by the first bytes, from raw sockets", () => {
  /** Writes each piece as its own packet, 30 ms apart, then waits until lb closes or `quietMs` passes. */
  async function send(port: number, pieces: Uint8Array[], quietMs = 300): Promise<{ received: Uint8Array; closed: boolean }> {
    const client = await openClient(port);
    for (const piece of pieces) {
      client.socket.write(piece);
      await Bun.sleep(30);
    }
    const closed = await Promise.race([client.closed.then(() => true), Bun.sleep(quietMs).then(() => false)]);
    client.socket.end();
    return { received: Uint8Array.from(Buffer.from(client.received(), "latin1")), closed };
  }

  test("a hello split over packets and records is routed by its name and reaches the backend byte for byte; not-TLS goes to the default; broken TLS is closed", async () => {
    const [named1, fallback] = [echoBackend(), echoBackend()];
    const listen = deadPort();
    const { lb } = await startLb(
      `[pools.named]\nbackends = ["tcp://127.0.0.1:${named1}"]\n[pools.fallback]\nbackends = ["tcp://127.0.0.1:${fallback}"]\n\n` +
        `[[tcp]]\nlisten = "127.0.0.1:${listen}"\nsni = ["db.example.org"]\npool = "named"\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "fallback"\n`,
    );
    const hello = records(clientHello(serverName("db.example.org")), 40);
    const pieces = [hello.subarray(0, 3), hello.subarray(3, 50), hello.subarray(50)];
    const routed = await send(listen, pieces);
    expect(Buffer.from(routed.received).toString("latin1")).toBe(Buffer.from(hello).toString("latin1"));
    expect((await send(listen, [new TextEncoder().encode("PING\r\n")])).received).toEqual(new TextEncoder().encode("PING\r\n"));
    expect(await send(listen, [Uint8Array.of(0x16, 3, 1, 0, 0)], 3000)).toEqual({ received: new Uint8Array(0), closed: true });
    const lines = await waitFor(() => (accessLines(lb).length === 3 ? accessLines(lb) : undefined), "three access lines");
    // In the order they ended, which is not the order they were opened in.
    const ended = lines.map(({ sni, pool, backend, end }) => ({ sni, pool, backend, end }));
    expect(ended).toContainEqual({ sni: "db.example.org", pool: "named", backend: `127.0.0.1:${named1}`, end: "closed" });
    expect(ended).toContainEqual({ sni: "", pool: "fallback", backend: `127.0.0.1:${fallback}`, end: "closed" });
    expect(ended).toContainEqual({ sni: "", pool: "-", backend: "-", end: "bad-hello" });
    expect(await scrape(lb)).toContain(`lb_tcp_rejected_total{listen="127.0.0.1:${listen}",reason="bad-hello"} 1`);
  });
});

describe("send-proxy on TCP connections", () => {
  /** HAProxy behind lb with accept-proxy, answering each HTTP request with the client address its PROXY header gave. */
  async function haproxyAcceptingProxy(): Promise<number> {
    const port = deadPort();
    const config = join(dir, `haproxy-${port}.cfg`);
    writeFileSync(
      config,
      "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n" +
        `frontend who\n  bind 127.0.0.1:${port} accept-proxy\n  http-request return status 200 content-type text/plain lf-string "%[src]:%[src_port]"\n`,
    );
    const proc = Bun.spawn(["haproxy", "-f", config, "-db"], { stdout: "ignore", stderr: "pipe" });
    cleanups.push(() => proc.kill("SIGKILL"));
    await waitFor(() => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => undefined), "haproxy to listen");
    return port;
  }

  test.each(["v1", "v2"])("send-proxy = %p: HAProxy with accept-proxy sees the client's own address and port", async (version) => {
    const haproxy = await haproxyAcceptingProxy();
    const listen = deadPort();
    await startLb(`[pools.who]\nbackends = ["tcp://127.0.0.1:${haproxy}"]\nsend-proxy = "${version}"\n\n[[tcp]]\nlisten = "127.0.0.1:${listen}"\npool = "who"\n`);
    // curl's own port is pinned to a range, so the port HAProxy names can only be the client's, never lb's.
    const run = Bun.spawn(["curl", "-s", "--max-time", "5", "--local-port", "47100-47199", `http://127.0.0.1:${listen}/`], { stdout: "pipe" });
    const [body, code] = await Promise.all([new Response(run.stdout).text(), run.exited]);
    expect(code).toBe(0);
    expect(body).toMatch(/^127\.0\.0\.1:471\d\d$/);
  });
});
