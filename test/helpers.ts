/** Real servers, real processes and real sockets for the tests; nothing here fakes the network. */
import { afterEach } from "bun:test";
import { type Subprocess } from "bun";
import { createConsola } from "consola";
import { connect } from "node:net";
import { format } from "node:util";
import { resolveConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/types.ts";
import { type AccessEntry, AccessLog } from "../src/log/access-log.ts";
import { pathOf } from "../src/proxy/trip.ts";
import { type RunningLb, startLb } from "../src/run/start.ts";

export const ROOT = new URL("..", import.meta.url).pathname;

/** Polls until `check` returns a truthy value, or fails with `what` after the deadline. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string | (() => string),
  timeoutMs = 5000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${typeof what === "function" ? what() : what}`);
    await Bun.sleep(20);
  }
}

/** Bun's own HTTP/3 client (`fetch` with `protocol: "http3"`, experimental). It takes no `ca`, only the system's
 * CAs or `rejectUnauthorized: false`; lb's certificate is checked over HTTP/1.1 and HTTP/2 elsewhere. */
export function fetchH3(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit);
}

/** The rows of /proc/net tables ("udp", "tcp", "tcp6") for sockets bound to `port`, split into fields (ports in hex). */
async function socketRows(tables: string[], port: number): Promise<string[][]> {
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const texts = await Promise.all(tables.map((table) => Bun.file(`/proc/net/${table}`).text()));
  return texts
    .flatMap((text) => text.split("\n").slice(1))
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1]?.endsWith(local));
}

/** How many UDP sockets are bound to `port` on any IPv4 address. */
export async function udpSocketsOn(port: number): Promise<number> {
  return (await socketRows(["udp"], port)).length;
}

/** The inodes of the TCP sockets listening on this port (IPv4 and IPv6): the same inode is the same socket. */
export async function tcpListenersOn(port: number): Promise<string[]> {
  return (await socketRows(["tcp", "tcp6"], port)).filter((fields) => fields[3] === "0A").map((fields) => fields[9]!);
}

/** What a backend received; copied on arrival, since Bun empties a Request's URL once it has been answered. */
export interface SeenRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: Headers;
}

export interface TestBackend {
  url: string;
  port: number;
  name: string;
  /** Requests this backend received, in order. */
  seen: SeenRequest[];
  stop(): Promise<void>;
}

/** A Bun backend on a free port; by default it answers "backend <name>". */
export function startBackend(
  name: string,
  handler: (request: Request) => Response | Promise<Response> = () => new Response(`backend ${name}`),
  port = 0,
): TestBackend {
  const seen: SeenRequest[] = [];
  const server = Bun.serve({
    port,
    hostname: "127.0.0.1",
    development: false,
    idleTimeout: 0,
    fetch(request) {
      seen.push({ method: request.method, path: pathOf(request.url), headers: new Headers(request.headers) });
      return handler(request);
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, port: server.port!, name, seen, stop: () => server.stop(true) };
}

/** A backend whose /events sends `data: first`, stays silent for `silenceMs`, then sends `data: second` and ends. */
export function startEventsBackend(silenceMs: number): TestBackend {
  const encoder = new TextEncoder();
  return startBackend("sse", (request) => {
    if (new URL(request.url).pathname !== "/events") return new Response("ok");
    let step = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        step++;
        if (step === 1) controller.enqueue(encoder.encode("data: first\n\n"));
        else if (step === 2) {
          await Bun.sleep(silenceMs);
          controller.enqueue(encoder.encode("data: second\n\n"));
        } else controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
}

export interface InProcessLb {
  lb: RunningLb;
  url: string;
  logs: string[];
  access: AccessEntry[];
  stop(): Promise<void>;
}

/** lb in this process, on a free port, with its logs and access entries captured for assertions. */
export async function startTestLb(backends: string[], settings: Record<string, unknown> = {}): Promise<InProcessLb> {
  const config: Config = resolveConfig(
    [{ source: "test", values: { port: 0, host: "127.0.0.1", admin: "127.0.0.1:0", "health-interval": "1s", ...settings, backends } }],
    { stdoutIsTTY: false },
  );
  const logs: string[] = [];
  const access: AccessEntry[] = [];
  const log = createConsola({
    level: 4,
    throttle: 0,
    // A message's fields object (for JSON logs) is left out, as the pretty format does.
    reporters: [{ log: (entry) => logs.push(`${entry.type}: ${format(...(typeof entry.args[1] === "object" ? entry.args.slice(0, 1) : entry.args))}`) }],
  });
  const accessLog = new AccessLog("json", { write: () => {}, flush: () => {} });
  accessLog.write = (entry) => void access.push(entry);
  const lb = await startLb(config, { log, accessLog });
  return { lb, url: lb.url.origin, logs, access, stop: () => lb.stop() };
}

/**
 * For a test file's top level: whatever the file starts through these is stopped after each test (all at once), as is
 * anything it pushes onto `cleanup` itself. `lbDefaults` are settings every lb of the file gets unless a test says
 * otherwise.
 */
export function stoppedAfterEach(lbDefaults: Record<string, unknown> = {}) {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    await Promise.all(cleanup.splice(0).map(async (stop) => stop()));
  });
  return {
    cleanup,
    /** startBackend, stopped after the test. */
    backend(name: string, handler?: (request: Request) => Response | Promise<Response>): TestBackend {
      const started = startBackend(name, handler);
      cleanup.push(started.stop);
      return started;
    },
    /** startTestLb with the file's defaults, stopped after the test. */
    async lbFor(urls: string[], settings: Record<string, unknown> = {}): Promise<InProcessLb> {
      const lb = await startTestLb(urls, { ...lbDefaults, ...settings });
      cleanup.push(lb.stop);
      return lb;
    },
  };
}

export interface LbProcess {
  proc: Subprocess<"pipe", "pipe", "pipe">;
  url: string;
  stdout: string[];
  stderr: string[];
  waitForLine(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<number>;
}

/** Runs the real command (`bun src/main.ts`, or another executable such as dist/lb) as a child process; `env` adds to the environment. */
export async function spawnLb(args: string[], command: string[] = ["bun", `${ROOT}src/main.ts`], env: Record<string, string> = {}): Promise<LbProcess> {
  // Every lb gets its admin API on a free port unless the test chooses one, so parallel lbs never collide on 7019.
  const adminArgs = args.includes("--admin") ? [] : ["--admin", "127.0.0.1:0"];
  const proc = Bun.spawn([...command, ...args, ...adminArgs], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", ...env } });
  const stdout = collectLines(proc.stdout);
  const stderr = collectLines(proc.stderr);
  const waitForLine = (stream: "stdout" | "stderr", pattern: RegExp, timeoutMs = 8000) =>
    waitFor(
      () => (stream === "stdout" ? stdout : stderr).find((l) => pattern.test(l)),
      () => `${stream} line ${pattern}; stderr so far:\n${stderr.join("\n")}`,
      timeoutMs,
    );
  const listening = await waitForLine("stderr", /lb listening on/);
  const url = /listening on (https?:\/\/\S+)/.exec(listening)![1]!.replace("0.0.0.0", "127.0.0.1");
  return {
    proc,
    url,
    stdout,
    stderr,
    waitForLine,
    kill: async (signal = "SIGTERM") => {
      proc.kill(signal);
      return proc.exited;
    },
  };
}

/** The worker processes of an lb run with --workers: its primary's children. */
export function workerPids(primary: number): number[] {
  const children = Bun.spawnSync(["pgrep", "-P", String(primary)]).stdout.toString().trim();
  return children ? children.split("\n").map(Number) : [];
}

/** Runs a command to completion: its exit code and output. `options.env` adds to this process's environment. */
export async function runCommand(
  args: string[],
  command: string[] = ["bun", `${ROOT}src/main.ts`],
  options: { env?: Record<string, string>; cwd?: string } = {},
) {
  const env = { ...process.env, NO_COLOR: "1", ...options.env };
  const proc = Bun.spawn([...command, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env, cwd: options.cwd });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** The lines a stream carries, filled in as they arrive. */
export function collectLines(stream: ReadableStream<Uint8Array>): string[] {
  const lines: string[] = [];
  void (async () => {
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      const parts = pending.split("\n");
      pending = parts.pop()!;
      lines.push(...parts);
    }
    if (pending) lines.push(pending);
  })();
  return lines;
}

export interface PythonBackend {
  url: string;
  port: number;
  proc: Subprocess;
  stop(): Promise<void>;
}

/** The seed's backend: `python3 -m http.server` serving a directory whose index.html names the port. */
export async function startPythonBackend(dir: string, port = 0): Promise<PythonBackend> {
  const proc = Bun.spawn(["python3", "-u", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir], {
    stdout: "pipe",
    stderr: "ignore",
  });
  const lines = collectLines(proc.stdout);
  const line = await waitFor(() => lines.find((l) => /port (\d+)/.test(l)), "python http.server to start");
  const actual = Number(/port (\d+)/.exec(line)![1]);
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    proc,
    stop: async () => {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** Sends exact bytes over a raw TCP socket and returns everything the server sent until it closed (or went quiet). */
export function rawRequest(port: number, bytes: string, quietMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let timer: ReturnType<typeof setTimeout>;
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(out);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    };
    socket.on("data", (data) => {
      out += data.toString("latin1");
      arm();
    });
    socket.on("end", done);
    socket.on("error", reject);
    arm();
  });
}

/** A port that was free a moment ago and has nothing listening on it: connections are refused. */
export function deadPort(): number {
  const server = Bun.serve({ port: 0, fetch: () => new Response() });
  const port = server.port!;
  server.stop(true);
  return port;
}

/**
 * A raw TCP backend that passes health checks (`GET <healthPath>` gets 200) and answers every other request with
 * exactly `answer`, or resets the connection when `answer` is "reset": for backends that misbehave below HTTP.
 */
export function rawBackend(healthPath: string, answer: string): { url: string; stop: () => Promise<void> } {
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        if (data.toString().startsWith(`GET ${healthPath} `)) {
          socket.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        } else if (answer === "reset") socket.terminate();
        else socket.end(answer);
      },
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, stop: async () => server.stop(true) };
}

/** A self-signed certificate for `name` (and whatever `altNames` adds), made with openssl into `dir`. */
export function selfSignedCertificate(dir: string, name: string, altNames = `DNS:${name}`): { cert: string; key: string } {
  const cert = `${dir}/${name}.pem`;
  const key = `${dir}/${name}.key`;
  const made = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", `/CN=${name}`, "-addext", `subjectAltName=${altNames}`],
    { stderr: "pipe" },
  );
  if (!made.success) throw new Error(`openssl could not make a test certificate: ${made.stderr}`);
  return { cert, key };
}

/** An nginx config that runs in the foreground with everything it writes under `dir`; `servers` are its server blocks. */
export function nginxConfig(dir: string, servers: string): string {
  return `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
${servers}
}
`;
}
