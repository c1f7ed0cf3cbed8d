/**
 * Cross-talk: does a byte a hostile backend sends ever reach a client other than the one whose request it answers?
 * The same hostile backend and raw clients as test/upstream/cross-talk.test.ts, as standalone processes, so that lb at any
 * commit and HAProxy can be pointed at the backend and driven alike. bench/cross-talk.sh starts everything.
 *
 *   bun bench/cross-talk.ts backend --port N [--ok-delay 20] [--ok-jitter 10]
 *       The hostile backend on 127.0.0.1:N. `GET /ok/<id>` answers `ok:<id>` after --ok-delay ± --ok-jitter ms
 *       (uniform: 10–30 ms by default, as in the test); `GET /health` 200;
 *       `GET /conns` the number of connections it has accepted (for the driver; answered at once); the cases below
 *       misbehave.
 *   bun bench/cross-talk.ts drive --url http://127.0.0.1:P --case "GET /304" --clients keep-alive|close
 *       --attack once|every [--seconds 10] [--count 40] [--backend http://127.0.0.1:N] [--label NAME]
 *       --count innocent clients fetch `/ok/<own id>` through the proxy for --seconds, each over a connection it keeps
 *       (keep-alive) or closes after each answer (close), beside one attacker that sends the case's request once, or
 *       every 100 ms, on a connection of its own. Prints one JSON line: every innocent answer sorted into its own,
 *       another client's (`foreign`), one nobody of them asked for (`stray`: ok:stolen, ok:twice, a 204 or 304),
 *       502s, other statuses, and errors (connect failure, closed before the answer, no answer within 2 s); with
 *       --backend, the backend connections the proxy opened meanwhile.
 *   bun bench/cross-talk.ts cases
 *       The case names, one a line.
 *   bun bench/cross-talk.ts report-matrix <file.jsonl>
 *       A Markdown table of drive's JSON lines.
 *   bun bench/cross-talk.ts report-cost <dir>
 *       A Markdown table of the wrk outputs bench/cross-talk.sh cost wrote to dir (cost-<proxy>-<load>-r<rep>.txt).
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";

const STOLEN = "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok:stolen";

/**
 * What the hostile backend does for each case's request, once it has arrived on `socket`. Exported (the command line
 * below runs only when this file is the entry): test/upstream/cross-talk.test.ts runs the same cases.
 */
export const CASES: Record<string, (socket: { write(text: string): unknown }, later: (ms: number, bytes: string) => void) => void> = {
  // A bodiless answer, then (once the proxy has taken the connection back) a whole second answer.
  "GET /304": (socket, later) => {
    socket.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n');
    later(20, STOLEN);
  },
  "GET /204": (socket, later) => {
    socket.write("HTTP/1.1 204 No Content\r\n\r\n");
    later(20, STOLEN);
  },
  // A HEAD answered with the body a GET would get, 10 ms late.
  "HEAD /head": (socket, later) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
    later(10, "ok:stolen");
  },
  // A valid answer, then 50 ms later a second one nobody asked for.
  "GET /twice": (socket, later) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nok:twice");
    later(50, STOLEN);
  },
};

interface Inbox {
  buffered: string;
}

function rawAnswer(body: string): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
}

/** `/ok/<id>` answers after okDelayMs ± jitterMs (uniform), so that the backend's connections are busy at any moment. */
function serveBackend(port: number, okDelayMs: number, jitterMs: number): void {
  let accepted = 0;
  const server = Bun.listen<Inbox>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(socket) {
        accepted++;
        socket.data = { buffered: "" };
      },
      data(socket, bytes) {
        socket.data.buffered += bytes.toString("latin1");
        for (let end = socket.data.buffered.indexOf("\r\n\r\n"); end !== -1; end = socket.data.buffered.indexOf("\r\n\r\n")) {
          const head = socket.data.buffered.slice(0, end);
          socket.data.buffered = socket.data.buffered.slice(end + 4);
          const [method, path = ""] = head.split(" ");
          const later = (ms: number, text: string) => void setTimeout(() => socket.write(text), ms);
          const misbehave = CASES[`${method} ${path}`];
          if (misbehave) misbehave(socket, later);
          else if (path === "/health") socket.write(rawAnswer("ok"));
          else if (path === "/conns") socket.write(rawAnswer(String(accepted)));
          else later(okDelayMs + (Math.random() * 2 - 1) * jitterMs, rawAnswer(`ok:${path.slice("/ok/".length)}`));
        }
      },
    },
  });
  process.stderr.write(`hostile backend listening on http://127.0.0.1:${server.port}\n`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0));
}

interface Reply {
  status: number;
  body: string;
}

/**
 * One HTTP/1.1 answer at the start of `bytes`, and how many bytes it took; null while incomplete. Bodies are framed by
 * the method and status (HEAD, 1xx, 204, 304: none), chunked, Content-Length, or else the connection's close.
 */
function parseAnswer(bytes: Buffer, head: boolean, closed: boolean): { reply: Reply; used: number } | null {
  const end = bytes.indexOf("\r\n\r\n");
  if (end === -1) return null;
  const lines = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? NaN);
  if (Number.isNaN(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0]?.slice(0, 40))}`);
  const header = (name: string) =>
    lines.find((line) => line.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim().toLowerCase();
  const start = end + 4;
  if (head || status < 200 || status === 204 || status === 304) return { reply: { status, body: "" }, used: start };
  if (header("transfer-encoding")?.includes("chunked")) return parseChunked(bytes, start, status);
  const length = header("content-length");
  if (length !== undefined) {
    const used = start + Number(length);
    return bytes.length < used ? null : { reply: { status, body: bytes.subarray(start, used).toString("latin1") }, used };
  }
  return closed ? { reply: { status, body: bytes.subarray(start).toString("latin1") }, used: bytes.length } : null;
}

function parseChunked(bytes: Buffer, start: number, status: number): { reply: Reply; used: number } | null {
  let body = "";
  for (let at = start; ; ) {
    const lineEnd = bytes.indexOf("\r\n", at);
    if (lineEnd === -1) return null;
    const size = parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
    if (Number.isNaN(size)) throw new Error("bad chunk size");
    if (size === 0) {
      const trailersEnd = bytes.indexOf("\r\n\r\n", lineEnd);
      return trailersEnd === -1 ? null : { reply: { status, body }, used: trailersEnd + 4 };
    }
    if (bytes.length < lineEnd + 2 + size + 2) return null;
    body += bytes.subarray(lineEnd + 2, lineEnd + 2 + size).toString("latin1");
    at = lineEnd + 2 + size + 2;
  }
}

const ANSWER_TIMEOUT_MS = 2000;

/** A client connection that sends one request at a time and reads the answers as they come, asked for or not. */
class RawClient {
  #received = Buffer.alloc(0);
  #waiting: { head: boolean; resolve: (reply: Reply) => void; reject: (error: Error) => void; timer: Timer } | null = null;
  closed = false;
  /** Times bytes arrived while no request was waiting for them. */
  unasked = 0;

  private constructor(private readonly socket: Socket<RawClient>) {}

  static async open(url: URL): Promise<RawClient> {
    let client!: RawClient;
    await Bun.connect<RawClient>({
      hostname: url.hostname,
      port: Number(url.port),
      socket: {
        open: (socket) => void (socket.data = client = new RawClient(socket)),
        data: (socket, bytes) => socket.data.onData(bytes),
        close: (socket) => socket.data?.onClose(),
        error: (socket) => socket.data?.onClose(),
      },
    });
    return client;
  }

  request(method: string, path: string): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error("closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new Error("no answer in time")), ANSWER_TIMEOUT_MS);
      this.#waiting = { head: method === "HEAD", resolve, reject, timer };
      this.socket.write(`${method} ${path} HTTP/1.1\r\nhost: lb\r\n\r\n`);
      this.#settle(); // bytes that came before the request are taken as its answer, as any HTTP/1.1 client would
    });
  }

  close(): void {
    this.closed = true;
    this.socket.end();
  }

  onData(bytes: Buffer): void {
    if (!this.#waiting) this.unasked++;
    this.#received = Buffer.concat([this.#received, bytes]);
    this.#settle();
  }

  onClose(): void {
    this.closed = true;
    this.#settle();
    this.#fail(new Error("closed before the answer"));
  }

  #settle(): void {
    const waiting = this.#waiting;
    if (!waiting) return;
    let parsed: ReturnType<typeof parseAnswer>;
    try {
      parsed = parseAnswer(this.#received, waiting.head, this.closed);
    } catch (error) {
      return this.#fail(error as Error);
    }
    if (!parsed) return;
    this.#received = this.#received.subarray(parsed.used);
    if (this.#received.length > 0) this.unasked++; // more than the answer came
    this.#waiting = null;
    clearTimeout(waiting.timer);
    waiting.resolve(parsed.reply);
  }

  #fail(error: Error): void {
    const waiting = this.#waiting;
    if (!waiting) return;
    this.#waiting = null;
    clearTimeout(waiting.timer);
    if (!this.closed) this.close();
    waiting.reject(error);
  }
}

interface Tally {
  requests: number;
  own: number;
  /** Another innocent client's answer. */
  foreign: number;
  /** An answer none of the innocent clients asked for: the attacker's, or the backend's stray one. */
  stray: number;
  bad502: number;
  otherStatus: number;
  errors: number;
  /** Times bytes reached an innocent client while it was not waiting for an answer. */
  unasked: number;
  /** The wrong answers and statuses seen, by kind ("200 ok:stolen", "502", ...): how many of each. */
  seen: Record<string, number>;
}

function sort(reply: Reply, id: number, tally: Tally): void {
  if (reply.status === 200 && reply.body === `ok:${id}`) return void tally.own++;
  const foreign = reply.status === 200 && /^ok:\d+$/.test(reply.body);
  if (reply.status === 502) tally.bad502++;
  else if (foreign) tally.foreign++;
  else if (reply.status < 400) tally.stray++;
  else tally.otherStatus++;
  const kind = foreign ? "200 ok:<another id>" : reply.status >= 400 ? String(reply.status) : `${reply.status} ${reply.body.slice(0, 20)}`;
  tally.seen[kind] = (tally.seen[kind] ?? 0) + 1;
}

/** An innocent client fetches /ok/<own id> until `until`; a connection the proxy closed is replaced, not counted. */
async function innocent(url: URL, id: number, keepAlive: boolean, until: number, tally: Tally): Promise<void> {
  let client: RawClient | null = null;
  while (performance.now() < until) {
    tally.requests++;
    try {
      if (!client || client.closed) {
        if (client) tally.unasked += client.unasked;
        client = await RawClient.open(url);
      }
      sort(await client.request("GET", `/ok/${id}`), id, tally);
    } catch (error) {
      tally.errors++;
      const kind = (error as Error).message;
      tally.seen[kind] = (tally.seen[kind] ?? 0) + 1;
      await Bun.sleep(10); // a proxy that refuses connections is not hammered in a tight loop
    }
    if (!keepAlive) client?.close();
  }
  if (client) {
    client.close();
    tally.unasked += client.unasked;
  }
}

interface AttackTally {
  sent: number;
  answered: number;
}

/** The attacker's client sends the case's request every 100 ms (or once), on a connection of its own. */
async function attacker(url: URL, request: string, keepAlive: boolean, until: number, once: boolean, tally: AttackTally): Promise<void> {
  const [method = "GET", path = "/"] = request.split(" ");
  let client: RawClient | null = null;
  await Bun.sleep(200); // the innocent clients are under way: every backend connection is in use, and reused at once
  do {
    tally.sent++;
    try {
      if (!client || client.closed) client = await RawClient.open(url);
      await client.request(method, path);
      tally.answered++;
    } catch {
      // the attacker's own failures are not the question
    }
    if (!keepAlive) client?.close();
    await Bun.sleep(100); // the attack's own pace, not a wait for the proxy
  } while (!once && performance.now() < until);
  client?.close();
}

async function backendConnections(backend: string | undefined): Promise<number | null> {
  if (!backend) return null;
  return Number(await (await fetch(`${backend}/conns`)).text());
}

async function drive(options: Map<string, string>): Promise<void> {
  const url = new URL(required(options, "url"));
  const request = required(options, "case");
  if (!CASES[request]) fail(`unknown case ${JSON.stringify(request)}; the cases: ${Object.keys(CASES).join(", ")}`);
  const clients = oneOf(options, "clients", ["keep-alive", "close"]);
  const attack = oneOf(options, "attack", ["once", "every"]);
  const seconds = positive(options, "seconds", 10);
  const count = positive(options, "count", 40);
  const backend = options.get("backend");

  const tally: Tally = { requests: 0, own: 0, foreign: 0, stray: 0, bad502: 0, otherStatus: 0, errors: 0, unasked: 0, seen: {} };
  const attacks: AttackTally = { sent: 0, answered: 0 };
  const connectionsBefore = await backendConnections(backend);
  const until = performance.now() + seconds * 1000;
  const keepAlive = clients === "keep-alive";
  await Promise.all([
    attacker(url, request, keepAlive, until, attack === "once", attacks),
    ...Array.from({ length: count }, (_, id) => innocent(url, id, keepAlive, until, tally)),
  ]);
  const connectionsAfter = await backendConnections(backend);
  const backendOpened = connectionsBefore === null || connectionsAfter === null ? null : connectionsAfter - connectionsBefore;
  const result = { label: options.get("label") ?? url.host, case: request, clients, attack, seconds, count, ...tally, attacks, backendOpened };
  console.log(JSON.stringify(result));
}

type Result = Tally & {
  label: string;
  case: string;
  clients: string;
  attack: string;
  seconds: number;
  attacks: AttackTally;
  backendOpened: number | null;
};

function reportMatrix(file: string): void {
  const results = lines(readFileSync(file, "utf8")).map((line) => JSON.parse(line) as Result);
  const labels = [...new Set(results.map((result) => result.label))];
  const cell = (result: Result | undefined) =>
    result
      ? `${fmt(result.foreign + result.stray)} (${fmt(result.foreign)}+${fmt(result.stray)}) / ${fmt(result.bad502)} / ` +
        `${fmt(result.errors + result.otherStatus)} of ${fmt(result.requests)}`
      : "-";
  console.log("Each cell: answers to the wrong client (another client's + stray) / 502s / errors, of the innocent requests.\n");
  console.log(`| case | clients | attack | ${labels.join(" | ")} |`);
  console.log(`|---|---|---|${labels.map(() => "---:").join("|")}|`);
  const keys = [...new Set(results.map((result) => `${result.case}\t${result.clients}\t${result.attack}`))];
  for (const key of keys) {
    const [request, clients, attack] = key.split("\t");
    const of = (label: string) =>
      results.find((result) => result.label === label && `${result.case}\t${result.clients}\t${result.attack}` === key);
    console.log(`| \`${request}\` | ${clients} | ${attack} | ${labels.map((label) => cell(of(label))).join(" | ")} |`);
  }
  console.log();
  console.log("| proxy | innocent requests | answers to the wrong client | 502 | errors | bytes while not asking | backend connections opened |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const label of labels) {
    const mine = results.filter((result) => result.label === label);
    const sum = (pick: (result: Result) => number) => fmt(mine.reduce((total, result) => total + pick(result), 0));
    console.log(
      `| ${label} | ${sum((r) => r.requests)} | ${sum((r) => r.foreign + r.stray)} | ${sum((r) => r.bad502)} | ` +
        `${sum((r) => r.errors + r.otherStatus)} | ${sum((r) => r.unasked)} | ${sum((r) => r.backendOpened ?? 0)} |`,
    );
  }
  const odd = results.filter((result) => Object.keys(result.seen).length > 0);
  if (odd.length > 0) console.log("\nWhat the innocent clients got instead of their own answer:\n");
  for (const result of odd) {
    const kinds = Object.entries(result.seen).map(([kind, n]) => `\`${kind}\` × ${fmt(n)}`);
    console.log(`- ${result.label}, \`${result.case}\` ${result.clients} ${result.attack}: ${kinds.join(", ")}`);
  }
}

interface WrkFigures {
  requests: number;
  rps: number;
  p99Ms: number;
  non2xx: number;
  /** wrk's socket errors by kind: connect, read, write, timeout. */
  socket: number[];
}

/** Requests per second, the 99th percentile, non-2xx/3xx answers and socket errors of one `wrk --latency` output. */
function parseWrk(text: string): WrkFigures {
  const rps = Number(/^Requests\/sec:\s+([\d.]+)/m.exec(text)?.[1] ?? NaN);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(text);
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[(p99?.[2] ?? "ms") as "us" | "ms" | "s" | "m"];
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const requests = Number(/^\s+(\d+) requests in /m.exec(text)?.[1] ?? NaN);
  return { requests, rps, p99Ms: Number(p99?.[1] ?? NaN) * unit, non2xx, socket: socket ? socket.slice(1).map(Number) : [0, 0, 0, 0] };
}

const SOCKET_ERROR_KINDS = ["connect", "read", "write", "timeout"];

function reportCost(dir: string): void {
  const upstream = (name: string) => {
    const file = join(dir, name.replace(/^cost-/, "upstream-"));
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const [established = "?", timeWait = "?"] = /established (\d+), time-wait (\d+)/.exec(text)?.slice(1) ?? [];
    return `${established}+${timeWait}`;
  };
  const runs = readdirSync(dir)
    .map((name) => /^cost-(.+)-(keepalive|close|304)-r(\d+)\.txt$/.exec(name))
    .filter((match) => match !== null)
    .map(([name, proxy, load, rep]) => ({
      proxy: proxy!,
      load: load!,
      rep: Number(rep),
      upstream: upstream(name!),
      ...parseWrk(readFileSync(join(dir, name!), "utf8")),
    }));
  const proxies = [...new Set(runs.map((run) => run.proxy))];
  const loads = ["keepalive", "close", "304"].filter((load) => runs.some((run) => run.load === load));
  const of = (proxy: string, load: string) =>
    runs.filter((run) => run.proxy === proxy && run.load === load).sort((a, b) => a.rep - b.rep);
  console.log("Each cell: one figure per repetition, in order.\n");
  console.log(`| load | ${proxies.map((proxy) => `${proxy} req/s | ${proxy} p99 ms`).join(" | ")} |`);
  console.log(`|---|${proxies.map(() => "---:|---:").join("|")}|`);
  for (const load of loads) {
    const cells = proxies.map((proxy) => {
      const mine = of(proxy, load);
      return `${mine.map((run) => fmt(Math.round(run.rps))).join(" / ")} | ${mine.map((run) => run.p99Ms.toFixed(1)).join(" / ")}`;
    });
    console.log(`| ${load} | ${cells.join(" | ")} |`);
  }
  const [first, ...others] = proxies;
  if (first && others.length > 0) {
    console.log(`\nreq/s over ${first}'s in the same repetition (the runs next to each other in time):\n`);
    console.log(`| load | ${others.join(" | ")} |`);
    console.log(`|---|${others.map(() => "---:").join("|")}|`);
    for (const load of loads) {
      const base = of(first, load);
      const ratios = others.map((proxy) =>
        of(proxy, load)
          .map((run) => (run.rps / (base.find((b) => b.rep === run.rep)?.rps ?? NaN)).toFixed(2))
          .join(" / "),
      );
      console.log(`| ${load} | ${ratios.join(" | ")} |`);
    }
  }
  console.log("\nThe proxy's connections to the backends halfway through each run, established + TIME-WAIT:\n");
  console.log(`| load | ${proxies.join(" | ")} |`);
  console.log(`|---|${proxies.map(() => "---:").join("|")}|`);
  for (const load of loads) {
    console.log(`| ${load} | ${proxies.map((proxy) => of(proxy, load).map((run) => run.upstream).join(" / ")).join(" | ")} |`);
  }
  console.log("\nErrors wrk counted, summed over the repetitions:\n");
  for (const load of loads) {
    for (const proxy of proxies) {
      const mine = of(proxy, load);
      const non2xx = mine.reduce((total, run) => total + run.non2xx, 0);
      const socket = SOCKET_ERROR_KINDS.map((kind, i) => [kind, mine.reduce((total, run) => total + run.socket[i]!, 0)] as const)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${kind} ${fmt(n)}`);
      const requests = fmt(mine.reduce((total, run) => total + run.requests, 0));
      if (non2xx > 0 || socket.length > 0) {
        console.log(`- ${load}, ${proxy}: non-2xx/3xx ${fmt(non2xx)}; socket errors: ${socket.join(", ") || "none"} (of ${requests} answers)`);
      }
    }
  }
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

function fail(message: string): never {
  process.stderr.write(`bench/cross-talk.ts: ${message}\n`);
  process.exit(2);
}

/** `--name value` pairs. */
function parseOptions(args: string[]): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!;
    const value = args[i + 1];
    if (!name.startsWith("--") || value === undefined) fail(`expected --name value pairs, got ${JSON.stringify(args.slice(i))}`);
    options.set(name.slice(2), value);
  }
  return options;
}

function required(options: Map<string, string>, name: string): string {
  return options.get(name) ?? fail(`--${name} is required`);
}

function oneOf(options: Map<string, string>, name: string, allowed: string[]): string {
  const value = required(options, name);
  return allowed.includes(value) ? value : fail(`--${name} is one of ${allowed.join(", ")}, not ${JSON.stringify(value)}`);
}

function positive(options: Map<string, string>, name: string, fallback: number): number {
  const value = Number(options.get(name) ?? fallback);
  return Number.isFinite(value) && value > 0 ? value : fail(`--${name} is a positive number`);
}

if (import.meta.main) await main(process.argv.slice(2));

async function main([command, ...rest]: string[]): Promise<void> {
  switch (command) {
    case "backend": {
      const options = parseOptions(rest);
      const port = Number(required(options, "port"));
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port is a port number");
      const okDelayMs = Number(options.get("ok-delay") ?? 20);
      const jitterMs = Number(options.get("ok-jitter") ?? 10);
      if (!(okDelayMs >= 0 && jitterMs >= 0 && jitterMs <= okDelayMs)) fail("--ok-delay and --ok-jitter are ms, jitter at most the delay");
      serveBackend(port, okDelayMs, jitterMs);
      break;
    }
    case "drive":
      await drive(parseOptions(rest));
      break;
    case "cases":
      console.log(Object.keys(CASES).join("\n"));
      break;
    case "report-matrix":
      reportMatrix(rest[0] ?? fail("usage: report-matrix <file.jsonl>"));
      break;
    case "report-cost":
      reportCost(rest[0] ?? fail("usage: report-cost <dir>"));
      break;
    default:
      fail("usage: bun bench/cross-talk.ts backend|drive|cases|report-matrix|report-cost ... (see the comment at the top)");
  }
}
