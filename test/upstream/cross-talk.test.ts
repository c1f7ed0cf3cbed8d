/**
 * No byte a backend sends may reach a client other than the one whose request it answers. A hostile backend sends
 * bytes nobody asked for — a body after a 304, 204 or HEAD answer, or a whole second answer some milliseconds after a
 * valid one — while innocent clients fetch their own `/ok/<id>` through lb, over connections that close after each
 * request and over keep-alive ones. Every innocent answer must be their own, and none a 502.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { CASES as ANSWERS } from "../../bench/cross-talk.ts";
import { stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, lbFor } = stoppedAfterEach({ "health-path": "/health", "health-interval": "1m" });

interface Queue {
  buffered: string;
  /** Counted in open(): it carried a request other than a health check. */
  counted: boolean;
}

/**
 * A raw HTTP/1.1 backend: `/ok/<id>` answers `ok:<id>` after 10–30 ms (spread, so that its connections are busy at
 * any moment, as under steady load); the paths in ANSWERS misbehave.
 */
/** `open()`: connections open that carried a request other than a health check. */
function hostileBackend(): { url: string; open: () => number } {
  let open = 0;
  const server = Bun.listen<Queue>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (socket) => void (socket.data = { buffered: "", counted: false }),
      close: (socket) => void (socket.data.counted && open--),
      data(socket, bytes) {
        socket.data.buffered += bytes.toString("latin1");
        for (let end = socket.data.buffered.indexOf("\r\n\r\n"); end !== -1; end = socket.data.buffered.indexOf("\r\n\r\n")) {
          const head = socket.data.buffered.slice(0, end);
          socket.data.buffered = socket.data.buffered.slice(end + 4);
          const [method, path] = head.split(" ");
          if (path !== "/health" && !socket.data.counted) {
            socket.data.counted = true;
            open++;
          }
          const later = (ms: number, text: string) => setTimeout(() => socket.write(text), ms);
          const misbehave = ANSWERS[`${method} ${path}`];
          if (misbehave) misbehave(socket, later);
          else if (path === "/health") socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
          else later(10 + Math.random() * 20, answer(`ok:${path!.slice("/ok/".length)}`));
        }
      },
    },
  });
  cleanup.push(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}`, open: () => open };
}

function answer(body: string): string {
  return `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
}

interface Reply {
  status: number;
  body: string;
}

/** A client connection that sends one request at a time and reads Content-Length answers (what lb sends here). */
class RawClient {
  #received = Buffer.alloc(0);
  #waiting: { head: boolean; resolve: (reply: Reply) => void; reject: (error: Error) => void } | null = null;
  #closed = false;

  private constructor(private readonly socket: Socket<RawClient>) {}

  static async open(port: number): Promise<RawClient> {
    let client!: RawClient;
    await Bun.connect<RawClient>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (socket) => void (socket.data = client = new RawClient(socket)),
        data: (socket, bytes) => socket.data.onData(bytes),
        close: (socket) => socket.data?.onClose(),
      },
    });
    return client;
  }

  request(method: string, path: string, headers = ""): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error("closed"));
    return new Promise((resolve, reject) => {
      this.#waiting = { head: method === "HEAD", resolve, reject };
      this.socket.write(`${method} ${path} HTTP/1.1\r\nhost: lb\r\n${headers}\r\n`);
    });
  }

  close(): void {
    this.socket.end();
  }

  onData(bytes: Buffer): void {
    this.#received = Buffer.concat([this.#received, bytes]);
    const waiting = this.#waiting;
    if (!waiting) return;
    const end = this.#received.indexOf("\r\n\r\n");
    if (end === -1) return;
    const head = this.#received.subarray(0, end).toString("latin1");
    const length = waiting.head ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.#received.length < end + 4 + length) return;
    const body = this.#received.subarray(end + 4, end + 4 + length).toString("latin1");
    this.#received = this.#received.subarray(end + 4 + length);
    this.#waiting = null;
    waiting.resolve({ status: Number(head.slice(9, 12)), body });
  }

  onClose(): void {
    this.#closed = true;
    this.#waiting?.reject(new Error("closed before the answer"));
    this.#waiting = null;
  }
}

interface Tally {
  answers: number;
  wrong: string[];
  errors: number;
}

/** Innocent clients fetch /ok/<own id> until `until`; every answer that is not their own is counted. */
async function innocent(port: number, id: number, keepAlive: boolean, until: number, tally: Tally): Promise<void> {
  let client = await RawClient.open(port);
  while (performance.now() < until) {
    const reply = await client.request("GET", `/ok/${id}`).catch(() => null);
    tally.answers++;
    if (!reply) tally.errors++;
    else if (reply.status !== 200 || reply.body !== `ok:${id}`) tally.wrong.push(`${reply.status} ${reply.body}`);
    if (!keepAlive || !reply) {
      client.close();
      client = await RawClient.open(port);
    }
  }
  client.close();
}

/** The attacker's client asks for the misbehaving path every 100 ms (or once), on a connection of its own. */
async function attacker(port: number, request: string, keepAlive: boolean, until: number, once: boolean): Promise<void> {
  const [method, path] = request.split(" ") as [string, string];
  let client = await RawClient.open(port);
  await Bun.sleep(200); // the innocent clients are under way: every backend connection is in use, and reused at once
  do {
    await client.request(method, path).catch(() => null);
    if (!keepAlive) {
      client.close();
      client = await RawClient.open(port);
    }
    await Bun.sleep(100); // the attack's own pace, not a wait for lb
  } while (!once && performance.now() < until);
  client.close();
}

const CLIENTS = 40;
const RUN_MS = 1500;

describe("a backend's stray bytes never reach another client", () => {
  for (const request of Object.keys(ANSWERS)) {
    for (const keepAlive of [false, true]) {
      for (const once of [true, false]) {
        const clients = keepAlive ? "keep-alive clients" : "clients that close after each request";
        test(`${request} ${once ? "once" : "every 100 ms"}, ${clients}: every answer is the client's own, none a 502`, async () => {
          const backend = hostileBackend();
          const lb = await lbFor([backend.url]);
          const port = Number(new URL(lb.url).port);
          const tally: Tally = { answers: 0, wrong: [], errors: 0 };
          const until = performance.now() + RUN_MS;
          await Promise.all([
            attacker(port, request, keepAlive, until, once),
            ...Array.from({ length: CLIENTS }, (_, id) => innocent(port, id, keepAlive, until, tally)),
          ]);
          expect(tally.answers).toBeGreaterThan(CLIENTS * 10);
          expect(tally.wrong).toEqual([]);
          expect(tally.errors).toBe(0);
        }, 15_000);
      }
    }
  }

  test("stray bytes are counted in /metrics by kind and logged once with the backend's name", async () => {
    const backend = hostileBackend();
    const lb = await lbFor([backend.url]);
    const port = Number(new URL(lb.url).port);
    for (let i = 0; i < 3; i++) {
      const client = await RawClient.open(port);
      expect((await client.request("GET", "/twice")).body).toBe("ok:twice");
      client.close();
    }
    const admin = lb.lb.adminUrl!.origin;
    const strays = async () => {
      const text = await (await fetch(`${admin}/metrics`)).text();
      return Number(/^lb_upstream_protocol_errors_total\{[^}]*kind="stray-bytes"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    await waitFor(async () => (await strays()) === 3, "three stray answers counted");
    const lines = lb.logs.filter((line) => line.includes("sent bytes nobody asked for"));
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain(new URL(backend.url).host);
  });

  test("a client that says Connection: close leaves no backend connection behind; a keep-alive client keeps its own", async () => {
    const backend = hostileBackend();
    const lb = await lbFor([backend.url]);
    const port = Number(new URL(lb.url).port);
    const closing = await RawClient.open(port);
    expect((await closing.request("GET", "/ok/1", "connection: close\r\n")).body).toBe("ok:1");
    await waitFor(() => backend.open() === 0, () => `the backend connection to close (${backend.open()} open)`);
    const keeping = await RawClient.open(port);
    expect((await keeping.request("GET", "/ok/2")).body).toBe("ok:2");
    expect((await keeping.request("GET", "/ok/3")).body).toBe("ok:3");
    expect(backend.open()).toBe(1);
    keeping.close();
  });
});
