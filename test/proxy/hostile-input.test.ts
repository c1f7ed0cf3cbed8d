/**
 * Hostile and malformed input, sent as exact bytes over raw TCP to an in-process lb in front of a Bun backend that
 * records every request it gets (method, path, headers and the body it read). The assertions that matter are on the
 * backend's side: a request lb refuses never reaches it, a smuggled request never does, and whatever does reach it is
 * exactly what the client framed. lb must also keep serving afterwards.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { connect, type Socket as NetSocket } from "node:net";
import { AccessLog } from "../../src/log/access-log.ts";
import { pathOf } from "../../src/proxy/trip.ts";
import { type InProcessLb, type TestBackend, rawRequest, startBackend, startTestLb } from "../helpers.ts";

// ---------------------------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: writes exact bytes, reads whole responses (Content-Length or chunked), sees the close.

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

class RawConnection {
  #buffer = "";
  #closed = false;
  #wake = Promise.withResolvers<void>();

  private constructor(private readonly socket: NetSocket) {
    socket.on("data", (data) => {
      this.#buffer += data.toString("latin1");
      this.#poke();
    });
    const closed = () => {
      this.#closed = true;
      this.#poke();
    };
    socket.on("end", closed);
    socket.on("close", closed);
    socket.on("error", closed); // EPIPE/ECONNRESET after lb closed on us: a close, as far as these tests care
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.off("error", reject);
        resolve(new RawConnection(socket));
      });
      socket.once("error", reject);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(bytes: string): void {
    if (!this.#closed) this.socket.write(Buffer.from(bytes, "latin1"));
  }

  /** The next final (non-1xx) response; null if the connection closed, or nothing complete came within the time. */
  async response(timeoutMs = 3000): Promise<RawResponse | null> {
    return (
      (await this.#until(() => {
        for (;;) {
          const parsed = parseResponse(this.#buffer, this.#closed);
          if (!parsed) return this.#closed ? null : undefined;
          this.#buffer = parsed.rest;
          if (parsed.response.status >= 200) return parsed.response;
        }
      }, timeoutMs)) ?? null
    );
  }

  /** True once lb has closed the connection (within the time). */
  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    return (await this.#until(() => (this.#closed ? true : undefined), timeoutMs)) ?? false;
  }

  destroy(): void {
    this.socket.destroy();
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = Promise.withResolvers<void>();
    wake.resolve();
  }

  async #until<T>(check: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#wake.promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }
}

/** One response from the front of `buffer`, or null when it is not complete yet. */
function parseResponse(buffer: string, closed: boolean): { response: RawResponse; rest: string } | null {
  const headEnd = buffer.indexOf("\r\n\r\n");
  if (headEnd === -1) return null;
  const [statusLine = "", ...lines] = buffer.slice(0, headEnd).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let rest = buffer.slice(headEnd + 4);
  if (status < 200 || status === 204 || status === 304) return { response: { status, headers, body: "" }, rest };
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    let body = "";
    for (;;) {
      const lineEnd = rest.indexOf("\r\n");
      if (lineEnd === -1) return null;
      const size = parseInt(rest.slice(0, lineEnd), 16);
      if (rest.length < lineEnd + 2 + size + 2) return null;
      body += rest.slice(lineEnd + 2, lineEnd + 2 + size);
      rest = rest.slice(lineEnd + 2 + size + 2);
      if (size === 0) return { response: { status, headers, body }, rest };
    }
  }
  if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (rest.length < length) return null;
    return { response: { status, headers, body: rest.slice(0, length) }, rest: rest.slice(length) };
  }
  return closed ? { response: { status, headers, body: rest }, rest: "" } : null;
}

// ---------------------------------------------------------------------------------------------------------------
// The recording backend, a "foreign" server nothing should ever reach, and one lb shared by most tests.

interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** What the client meant to send: the backend must receive exactly this (headers aside). */
type Meant = Pick<Received, "method" | "path" | "body">;

const received: Received[] = [];
/** Connections (and their bytes) that reached the foreign server: there must never be any. */
const foreignHits: string[] = [];

let backend: TestBackend;
let foreign: TCPSocketListener;
let lb: InProcessLb;
let port: number;
/** The foreign server's authority, host:port: a real listener, so "never sent elsewhere" is observable. */
let FOREIGN: string;

beforeAll(async () => {
  backend = startBackend("recorder", async (request) => {
    // Read as latin1 so every byte is compared exactly.
    const body = Buffer.from(await request.arrayBuffer()).toString("latin1");
    if (request.headers.get("user-agent")?.startsWith("lb-health-check/")) return new Response("ok");
    const seen = { method: request.method, path: pathOf(request.url), headers: Object.fromEntries(request.headers), body };
    received.push(seen);
    return Response.json({ method: seen.method, path: seen.path, body: seen.body });
  });
  foreign = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open() {
        foreignHits.push("(connection)");
      },
      data(socket, data) {
        foreignHits.push(data.toString("latin1"));
        socket.end("HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nFOREIGN");
      },
    },
  });
  FOREIGN = `127.0.0.1:${foreign.port}`;
  // A long health interval: the only health check is the first one, before lb takes requests.
  lb = await startTestLb([backend.url], { "health-interval": "1m" });
  port = lb.lb.port;
});

afterAll(async () => {
  await lb?.stop();
  await backend?.stop();
  foreign?.stop(true);
});

beforeEach(() => {
  received.length = 0;
  foreignHits.length = 0;
});

/** Sends `bytes` on a new connection and returns the first response (null if lb closed without one). */
async function exchange(bytes: string, timeoutMs = 3000): Promise<{ response: RawResponse | null; conn: RawConnection }> {
  const conn = await RawConnection.open(port);
  conn.send(bytes);
  return { response: await conn.response(timeoutMs), conn };
}

let normalCount = 0;

/** A plain GET on `conn` (a new connection by default): it must come back 200 from the backend, for this request. */
async function expectServed(conn?: RawConnection): Promise<void> {
  const own = !conn;
  const c = conn ?? (await RawConnection.open(port));
  const path = `/still-serving?n=${++normalCount}`;
  c.send(`GET ${path} HTTP/1.1\r\nHost: lb.test\r\n\r\n`);
  const response = await c.response();
  if (own) c.destroy();
  expect(response?.status).toBe(200);
  expect(JSON.parse(response!.body)).toEqual({ method: "GET", path, body: "" });
  expect(received.at(-1)).toMatchObject({ method: "GET", path, body: "" });
}

/**
 * Sends a request lb must refuse: an error status (4xx, or the 505 Bun's parser gives a request line it cannot
 * read) or no answer at all, then (when the framing itself is in doubt) a closed connection; the backend gets
 * nothing; a normal request is then served.
 */
async function expectRefused(
  bytes: string,
  allowed: (status: number) => boolean = isClientError,
  { mustClose = true } = {},
): Promise<RawResponse | null> {
  const { response, conn } = await exchange(bytes);
  try {
    if (response) expect({ status: response.status, allowed: allowed(response.status) }).toEqual({ status: response.status, allowed: true });
    else expect(conn.closed).toBe(true);
    if (mustClose) expect(await conn.waitClosed()).toBe(true);
  } finally {
    conn.destroy();
  }
  await expectServed();
  // Only the normal request got through: the refused one never did (it was sent, and closed, before it).
  expect(received.map(({ method, path }) => `${method} ${path}`)).toEqual([`GET /still-serving?n=${normalCount}`]);
  expect(foreignHits).toEqual([]);
  return response;
}

const isClientError = (status: number) => status >= 400 && status <= 499;
/** Bun's parser (uWS) answers 505 to a request line it cannot split into method, target and version. */
const isClientErrorOr505 = (status: number) => isClientError(status) || status === 505;

// ---------------------------------------------------------------------------------------------------------------

describe("1. malformed request lines and header names", () => {
  const cases: Record<string, string> = {
    "a header name with a space": "GET /bad-name HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    "a header line without a colon": "GET /no-colon HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "an empty header name": "GET /empty-name HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n",
    "a NUL in a header value": "GET /nul-value HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "a bare CR in a header value": "GET /cr-value HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "an obs-fold continuation line": "GET /fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "a NUL in the target": "GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "a space in the target": "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "a request line without a version": "GET /no-version\r\nHost: x\r\n\r\n",
    "an unknown HTTP version": "GET /v2 HTTP/2.0\r\nHost: x\r\n\r\n",
    "bare LF line ends": "GET /bare-lf HTTP/1.1\nHost: x\n\n",
    "a lowercase method": "get /lower HTTP/1.1\r\nHost: x\r\n\r\n",
    "an unknown method": "FOO /foo HTTP/1.1\r\nHost: x\r\n\r\n",
    "a target that is not a path": "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.1 without a Host": "GET /no-host HTTP/1.1\r\n\r\n",
    // With --http2 on the preface starts HTTP/2 (by default it is a malformed HTTP/1 line): either way garbage after it
    // ends the connection and nothing is forwarded.
    "the HTTP/2 preface, then garbage": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "garbage bytes (a TLS ClientHello start)": "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe garbage\r\n\r\n",
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(`${name}: refused, nothing forwarded, lb keeps serving`, async () => {
      await expectRefused(bytes, isClientErrorOr505);
    });
  }

  // RFC 9110 §4.2.4: a fragment is the client's own; a backend that routes on what follows "#" would see another path.
  test("a target with a fragment: 400, not forwarded, lb keeps serving", async () => {
    const response = await expectRefused("GET /x#/internal/ HTTP/1.1\r\nHost: x\r\n\r\n", (status) => status === 400, { mustClose: false });
    expect(response?.body).toContain("fragment");
  });
});

describe("2. duplicate or conflicting Content-Length", () => {
  test("two different Content-Length headers: 400", async () => {
    const response = await expectRefused("POST /two-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    expect(response?.status).toBe(400);
  });

  test("a Content-Length list (5, 6): 400", async () => {
    const response = await expectRefused("POST /cl-list HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!");
    expect(response?.status).toBe(400);
  });

  for (const [name, value] of [["signed", "+5"], ["negative", "-1"], ["hex", "0x5"], ["empty", ""], ["overflowing", "99999999999999999999999"]]) {
    test(`a ${name} Content-Length (${JSON.stringify(value)}): refused`, async () => {
      await expectRefused(`POST /odd-cl HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\nhello`);
    });
  }

  test("the same Content-Length twice: refused, or forwarded with exactly that body (RFC 9110 §8.6 allows either)", async () => {
    const { response, conn } = await exchange("POST /same-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    conn.destroy();
    if (response?.status === 200) expect(received.map(meant)).toEqual([{ method: "POST", path: "/same-cl", body: "hello" }]);
    else expect(received).toEqual([]);
  });
});

function meant({ method, path, body }: Received): Meant {
  return { method, path, body };
}

describe("3. request smuggling probes", () => {
  const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  // Each probe: the bytes, and the requests the backend may receive (none when lb must refuse the framing).
  const probes: Record<string, { bytes: string; meant: Meant[] }> = {
    "CL.TE: Content-Length then Transfer-Encoding: chunked": {
      bytes: `POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "TE.CL: Transfer-Encoding: chunked then Content-Length": {
      bytes:
        "POST /te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
        `5c\r\n${"GET /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1"}\r\n0\r\n\r\n`,
      meant: [],
    },
    "Transfer-Encoding: xchunked with a Content-Length": {
      bytes: `POST /xchunked HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n5c\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding: xchunked alone": {
      bytes: `POST /xchunked-alone HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a space before the colon (Transfer-Encoding : chunked)": {
      bytes: `POST /te-space HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a tab before the value": {
      bytes: `POST /te-tab HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a vertical tab before the value": {
      bytes: `POST /te-vt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a header line starting with a space": {
      bytes: `POST /te-lead HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding folded onto a continuation line": {
      bytes: `POST /te-fold HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a quoted \"chunked\"": {
      bytes: `POST /te-quoted HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding: chunked, identity": {
      bytes: `POST /te-ci HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding: identity, chunked": {
      bytes: `POST /te-ic HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "two Transfer-Encoding headers (chunked, then identity)": {
      bytes: `POST /te-two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding: chunked, chunked": {
      bytes: `POST /te-cc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "Transfer-Encoding: chunked in HTTP/1.0": {
      bytes: `POST /te-10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a chunk size that overflows 64 bits": {
      bytes: `POST /chunk-overflow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a negative chunk size": {
      bytes: `POST /chunk-negative HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "a chunk longer than its size": {
      bytes: `POST /chunk-long HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
      meant: [],
    },
    "chunk lines ending in a bare LF": {
      bytes: `POST /chunk-lf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n${SMUGGLED}`,
      meant: [],
    },
    // The last chunk followed by a request line where the trailer section belongs (a TE.0-style desync): Bun has
    // already dispatched the POST with its chunked body when it reaches the bad trailer, so that much may arrive.
    "a request line in place of the trailer section": {
      bytes: `POST /te-0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n${SMUGGLED}`,
      meant: [{ method: "POST", path: "/te-0", body: "hello" }],
    },
    // A GET's Content-Length body that looks like a request: it is the body, never a request of its own. Bun.serve
    // drops a GET's body (see "a GET's body reaches the backend" below), so the GET may arrive with or without it.
    "a GET whose Content-Length body is a request": {
      bytes: `GET /get-body HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
      meant: [
        { method: "GET", path: "/get-body", body: SMUGGLED },
        { method: "GET", path: "/get-body", body: "" },
      ],
    },
  };

  for (const [name, { bytes, meant: allowed }] of Object.entries(probes)) {
    test(`${name}: the backend never sees /smuggled, only what the client meant`, async () => {
      const conn = await RawConnection.open(port);
      conn.send(bytes);
      // Everything lb answers on this connection until it closes or goes quiet.
      const responses: RawResponse[] = [];
      for (let r = await conn.response(1000); r; r = await conn.response(300)) responses.push(r);
      await Bun.sleep(50); // a forwarded /smuggled would be on its way by now
      expect(received.map((r) => r.path)).not.toContain("/smuggled");
      for (const request of received) expect(allowed).toContainEqual(meant(request));
      expect(received.length).toBeLessThanOrEqual(1);
      // No response may be the backend's answer to anything the client did not mean.
      for (const response of responses) {
        if (response.status === 200) expect(allowed).toContainEqual(JSON.parse(response.body));
        else expect(response.status).toBeGreaterThanOrEqual(400);
      }
      if (allowed.length === 0) {
        expect(received).toEqual([]);
        expect(responses.map((r) => r.status)).toEqual([400]);
      }
      // The next request: on the same connection if lb kept it open, else on a new one.
      if (!conn.closed) await expectServed(conn);
      conn.destroy();
      await expectServed();
      expect(received.map((r) => r.path)).not.toContain("/smuggled");
      expect(foreignHits).toEqual([]);
    });
  }

  test("legal spellings of chunked (any case, trailing space, chunk extensions) are decoded exactly, and the connection goes on", async () => {
    const conn = await RawConnection.open(port);
    const bodies = [
      ["/chunked-upper", "Transfer-Encoding: CHUNKED", "5\r\nhello\r\n0\r\n\r\n"],
      ["/chunked-ows", "Transfer-Encoding: chunked ", "5\r\nhello\r\n0\r\n\r\n"],
      ["/chunked-ext", "Transfer-Encoding: chunked", "2;name=value\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"],
    ] as const;
    for (const [path, header, body] of bodies) {
      conn.send(`POST ${path} HTTP/1.1\r\nHost: x\r\n${header}\r\n\r\n${body}`);
      const response = await conn.response();
      expect(response?.status).toBe(200);
      expect(JSON.parse(response!.body)).toEqual({ method: "POST", path, body: "hello" });
    }
    await expectServed(conn);
    conn.destroy();
    expect(received.map(meant)).toEqual([
      ...bodies.map(([path]) => ({ method: "POST", path, body: "hello" })),
      { method: "GET", path: `/still-serving?n=${normalCount}`, body: "" },
    ]);
  });

  // Bun.serve hands the handler a GET (or HEAD) request with `body === null` even when the client sent a
  // Content-Length or chunked body: it reads and drops the bytes. Forwarding the GET without them would change its
  // meaning (an Elasticsearch _search without its query), so lb refuses it; HAProxy would pass the body on.
  const bodies: Record<string, string> = {
    "a GET with a Content-Length body": "GET /get-body HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"q\":\"abc\"}",
    "a GET with a chunked body": "GET /get-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "a GET with a malformed chunked body": "GET /get-bad-chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  };
  for (const [name, bytes] of Object.entries(bodies)) {
    test(`${name}: 400, nothing forwarded (Bun.serve would drop the body)`, async () => {
      const response = await expectRefused(bytes, (status) => status === 400, { mustClose: false });
      expect(response?.status).toBe(400);
    });
  }

  test("a HEAD with a body: 400 (its answer has no body), nothing forwarded", async () => {
    const answer = await rawRequest(port, "HEAD /head-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    expect(answer).toStartWith("HTTP/1.1 400");
    expect(received).toEqual([]);
    await expectServed();
  });

  test("a GET with an empty body (Content-Length: 0) is forwarded as usual", async () => {
    const { response, conn } = await exchange("GET /get-empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    conn.destroy();
    expect(response?.status).toBe(200);
    expect(received.map(meant)).toEqual([{ method: "GET", path: "/get-empty", body: "" }]);
  });

  // RFC 9110 §5.6.1: a list may hold empty elements, which recipients ignore; Bun reads ",chunked" as chunked, and lb
  // sends the backend the body it decoded, framed anew. (HAProxy answers 422.)
  test("Transfer-Encoding: ,chunked is read as chunked and forwarded exactly", async () => {
    const { response, conn } = await exchange("POST /te-comma HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    conn.destroy();
    expect(response?.status).toBe(200);
    expect(received.map(meant)).toEqual([{ method: "POST", path: "/te-comma", body: "hello" }]);
  });

  // Bun limitation: Bun's chunked parser (uWS) does not accept a trailer section. With `0\r\nX-T: 1\r\n\r\n` it
  // dispatches the request with its body, then treats the trailer line as the next request, answers that 400 and
  // closes; lb's answer to the POST, still pending (async handler), is discarded. Seen: the backend processed
  // POST /trailer with body "hello", yet the client got only "400 Bad Request". Trailers are legal HTTP/1.1 (RFC 9112
  // §7.1.2); a proxy may drop them, but must answer the request.
  test.failing("a chunked body with a trailer field is answered (fails: Bun rejects trailers after dispatching)", async () => {
    const { response, conn } = await exchange(
      "POST /trailer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    );
    conn.destroy();
    expect(received.map(meant)).toEqual([{ method: "POST", path: "/trailer", body: "hello" }]);
    expect(response?.status).toBe(200);
  });
});

describe("4. oversized request line and headers", () => {
  const cases: Record<string, string> = {
    "a 100 KB URL": `GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    "200 headers of 1 KB": `GET /many HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 200 }, (_, i) => `X-H${i}: ${"v".repeat(1024)}\r\n`).join("")}\r\n`,
    "one 100 KB header": `GET /big-header HTTP/1.1\r\nHost: x\r\nX-Big: ${"v".repeat(100_000)}\r\n\r\n`,
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(`${name}: 431 or 414 (or a close), nothing forwarded, lb keeps serving`, async () => {
      await expectRefused(bytes, (status) => status === 431 || status === 414);
    });
  }
});

describe("5. foreign hosts never change where a request goes", () => {
  const cases: Record<string, (foreign: string) => string> = {
    "absolute-form URI, Host naming the same foreign host": (f) => `GET http://${f}/x HTTP/1.1\r\nHost: ${f}\r\n\r\n`,
    "absolute-form URI to a foreign host, another Host": (f) => `GET http://${f}/x HTTP/1.1\r\nHost: lb.test\r\n\r\n`,
    "absolute-form URI with userinfo": (f) => `GET http://user:pw@${f}/x HTTP/1.1\r\nHost: ${f}\r\n\r\n`,
    "absolute-form URI to evil.example": () => "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "Host naming a foreign host": (f) => `GET /x HTTP/1.1\r\nHost: ${f}\r\n\r\n`,
    "Host naming evil.example": () => "GET /x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(`${name}: the configured backend gets /x, nothing else is contacted`, async () => {
      const { response, conn } = await exchange(bytes(FOREIGN));
      conn.destroy();
      expect(response?.status).toBe(200);
      expect(JSON.parse(response!.body)).toEqual({ method: "GET", path: "/x", body: "" });
      expect(received.map(meant)).toEqual([{ method: "GET", path: "/x", body: "" }]);
      expect(foreignHits).toEqual([]);
    });
  }

  // RFC 9112 §3.2: a server MUST answer 400 to several Host lines or a Host that is not host[:port]. Bun.serve
  // accepts both (joining repeated lines with ", "), so lb checks: otherwise a backend that builds URLs or picks a
  // virtual host from Host would be open to Host-header injection through lb.
  const badHosts: Record<string, (foreign: string) => string> = {
    "two Host lines": (f) => `Host: a.test\r\nHost: ${f}`,
    "a Host with userinfo": (f) => `Host: a@${f}`,
    "a Host with a path": (f) => `Host: ${f}/abc`,
  };
  for (const [name, header] of Object.entries(badHosts)) {
    test(`${name}: 400, not forwarded`, async () => {
      // The message framing is sound, so lb may keep the connection open after its 400.
      await expectRefused(`GET /x HTTP/1.1\r\n${header(FOREIGN)}\r\n\r\n`, (status) => status === 400, { mustClose: false });
    });
  }
});

describe("6. CONNECT", () => {
  // lb is not a forward proxy: a CONNECT gets 405 and is never sent on (forwarding it would relay the backend's
  // 200, which a client reads as "tunnel established").
  const cases: Record<string, (foreign: string) => string> = {
    "CONNECT evil.example:443": () => "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "CONNECT to a listening foreign host": (f) => `CONNECT ${f} HTTP/1.1\r\nHost: ${f}\r\n\r\n`,
  };
  for (const [name, bytes] of Object.entries(cases)) {
    test(`${name}: 405 (or 400), no tunnel, the backend sees nothing`, async () => {
      const { response, conn } = await exchange(bytes(FOREIGN));
      // Whatever follows a CONNECT must not be carried anywhere.
      conn.send("GET /through-the-tunnel HTTP/1.1\r\nHost: x\r\n\r\n");
      await Bun.sleep(100);
      conn.destroy();
      expect([405, 400]).toContain(response?.status ?? 0);
      expect(received).toEqual([]);
      expect(foreignHits).toEqual([]);
    });
  }
});

describe("7. keep-alive and pipelining", () => {
  test("sequential requests on one keep-alive connection are answered in order", async () => {
    const conn = await RawConnection.open(port);
    for (const path of ["/k1", "/k2", "/k3"]) {
      conn.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const response = await conn.response();
      expect(JSON.parse(response?.body ?? "null")).toEqual({ method: "GET", path, body: "" });
    }
    conn.destroy();
    expect(received.map((r) => r.path)).toEqual(["/k1", "/k2", "/k3"]);
  });

  // Bun limitation: when a pipelined request arrives while the response to the previous one is still pending (any
  // async handler; lb's always is, it awaits the backend), Bun's uWS layer closes the socket ("denying async
  // pipelining", the HTTP_RESPONSE_PENDING branch of HttpContext::onData); the pending response is discarded.
  // Seen: the backend receives /p1 (it did the work), the client gets zero bytes and a close; /p2 and /p3 are never
  // dispatched. Proposed upstream fixes: oven-sh/bun#32868, #33664, #35036 (closed), #38128, #43273 (open). Clients
  // that pipeline (rare) must retry; a non-idempotent first request may then run twice. Why lb does not move to
  // node:http instead: bench/results/2026-11-25-pipelining.md. When this test starts passing, make it a test().
  test.failing("three pipelined requests are answered in order (fails: Bun closes pipelined connections with an async handler)", async () => {
    const conn = await RawConnection.open(port);
    conn.send(["/p1", "/p2", "/p3"].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(""));
    const bodies: unknown[] = [];
    for (let i = 0; i < 3; i++) bodies.push(JSON.parse((await conn.response())?.body ?? "null"));
    conn.destroy();
    expect(bodies).toEqual(["/p1", "/p2", "/p3"].map((path) => ({ method: "GET", path, body: "" })));
  });
});

describe("8. slowloris", () => {
  test(
    "a request line and then one header byte a second: closed within 15 s, while another client is served",
    async () => {
      const started = Date.now();
      const slow = await RawConnection.open(port);
      slow.send("GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      const dribble = setInterval(() => slow.send("a"), 1000);
      try {
        // Another client, served normally (and promptly) every two seconds while the slow one hangs on.
        while (!slow.closed && Date.now() - started < 15_000) {
          const t0 = Date.now();
          await expectServed();
          expect(Date.now() - t0).toBeLessThan(1000);
          await slow.waitClosed(2000);
        }
        expect(slow.closed).toBe(true);
        expect(Date.now() - started).toBeLessThanOrEqual(15_000);
        expect(await slow.response(10)).toBeNull(); // closed without a (forwarded) answer
        expect(received.map((r) => r.path)).not.toContain("/slowloris");
      } finally {
        clearInterval(dribble);
        slow.destroy();
      }
    },
    20_000,
  );
});

describe("9. secrets never logged", () => {
  test("Authorization, Proxy-Authorization, Cookie and URI userinfo stay out of debug logs and access lines", async () => {
    const debugLb = await startTestLb([backend.url], { "health-interval": "1m", "log-level": "debug" });
    try {
      const requests = [
        "GET /secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t\r\nCookie: sid=s3cr3t\r\nProxy-Authorization: Basic s3cr3t\r\n\r\n",
        "GET http://user:s3cr3t@lb.test/secret-userinfo HTTP/1.1\r\nHost: lb.test\r\n\r\n",
      ];
      for (const bytes of requests) {
        const conn = await RawConnection.open(debugLb.lb.port);
        conn.send(bytes);
        expect((await conn.response())?.status).toBe(200);
        conn.destroy();
      }
      // The requests did reach the backend, secrets and all (lb redacts logs, not requests).
      expect(received.find((r) => r.path === "/secret")?.headers).toMatchObject({ authorization: "Bearer s3cr3t", cookie: "sid=s3cr3t" });
      // Debug logging really ran and showed the headers, redacted.
      expect(debugLb.logs).toContain("debug: authorization: [redacted]");
      expect(debugLb.logs).toContain("debug: cookie: [redacted]");
      expect(debugLb.logs.filter((line) => line.includes("s3cr3t"))).toEqual([]);
      // Every access-log format, written from the entries lb produced.
      expect(debugLb.access.map((e) => e.path)).toEqual(["/secret", "/secret-userinfo"]);
      for (const format of ["json", "combined", "pretty"] as const) {
        let text = "";
        const accessLog = new AccessLog(format, { write: (chunk: string | Uint8Array) => (text += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)), flush: () => {} });
        for (const entry of debugLb.access) accessLog.write(entry);
        accessLog.flush();
        expect(text).toContain("/secret");
        expect(text).not.toContain("s3cr3t");
      }
    } finally {
      await debugLb.stop();
    }
  });
});

describe("10. a Connection header lb cannot fully read", () => {
  test("a client's Connection header naming a non-token is ignored, not a 500", async () => {
    const answer = await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, x y\r\n\r\n");
    expect(answer).toStartWith("HTTP/1.1 200");
  });
});
