/**
 * Forwarding, the header side: what lb adds (X-Forwarded-*), what it must drop (hop-by-hop, both directions), and
 * what it must pass through untouched (Host, Set-Cookie, redirects, method/path/query, bodiless responses,
 * Content-Length). Real Bun.serve backends, lb in this process, and real clients: raw sockets, fetch and curl.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { WHOLE_BODY_LIMIT_BYTES as RESPONSE_BUFFER_LIMIT_BYTES } from "../../src/upstream/response-body.ts";
import { type InProcessLb, type TestBackend, rawBackend, rawRequest, startBackend, startTestLb, waitFor } from "../helpers.ts";

/** What the backend saw of one request, read while the request was live (Bun drops headers once it is answered). */
interface Received {
  method: string;
  /** The request-target as the backend got it: path and query, encoded exactly as sent. */
  target: string;
  headers: Headers;
}

/** Path and query of a Bun.serve request URL, without re-encoding or normalising it as `new URL` would. */
function targetOf(url: string): string {
  if (url.startsWith("/")) return url; // Bun gives a bare target when the Host is not a usable authority
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme + 3);
  return slash === -1 ? "/" : url.slice(slash);
}

interface RawResponse {
  statusLine: string;
  status: number;
  /** Header fields in wire order, names lower-cased. */
  headers: [string, string][];
  /** Everything after the blank line that ends the header block. */
  rest: string;
}

function parseRaw(text: string): RawResponse {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) throw new Error(`no complete header block in ${JSON.stringify(text)}`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  return { statusLine, status: Number(statusLine.split(" ")[1]), headers, rest: text.slice(end + 4) };
}

/**
 * Sends requests one after another on one kept-alive socket: each is written once the previous response's header
 * block has arrived (all but the last must be bodiless), and the last asks lb to close. Returns all bytes received.
 */
function sequentialExchange(port: number, requests: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let next = 0;
    let heads = 0;
    const socket = connect(port, "127.0.0.1", () => socket.write(requests[next++]!));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete exchange in 5s; got ${JSON.stringify(out)}`));
    }, 5000);
    socket.on("data", (data) => {
      out += data.toString("latin1");
      const complete = out.split("\r\n\r\n").length - 1;
      while (heads < complete && next < requests.length) {
        heads++;
        socket.write(requests[next++]!);
      }
    });
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const values = (response: RawResponse, name: string) => response.headers.filter(([n]) => n === name).map(([, v]) => v);

const BODY_SIZES = [10, 100_000, RESPONSE_BUFFER_LIMIT_BYTES, 4 * 1024 * 1024];
const SIZED_BODIES = new Map(BODY_SIZES.map((n) => [n, new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff)]));

let backend: TestBackend;
let lb: InProcessLb;
let lbPort: number;
const received: Received[] = [];

/** Requests to `target` that reached the backend (health checks go to / and are never looked up here). */
const arrivals = (target: string) => received.filter((r) => r.target === target);
const arrival = (target: string) => waitFor(() => arrivals(target)[0], `the backend to receive ${target}`);

function route(request: Request): Response {
  const target = targetOf(request.url);
  const path = target.split("?")[0]!;
  if (!request.headers.get("user-agent")?.startsWith("lb-health-check")) {
    received.push({ method: request.method, target, headers: new Headers(request.headers) });
  }
  if (path === "/hop-response") {
    return new Response("hop", {
      headers: {
        Connection: "x-drop-me",
        "X-Drop-Me": "1",
        "Keep-Alive": "timeout=5",
        "Proxy-Authenticate": "Basic realm=\"lb\"",
        "X-Keep-Me": "yes",
      },
    });
  }
  if (path === "/cookies") {
    const headers = new Headers({ "content-type": "text/plain" });
    headers.append("set-cookie", "a=1; Path=/; HttpOnly");
    headers.append("set-cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/");
    headers.append("set-cookie", "c=3, with comma; Secure");
    return new Response("cookies", { headers });
  }
  if (path.startsWith("/redirect/")) {
    const status = Number(path.split("/")[2]);
    const location = new URL(`http://x${target}`).searchParams.get("to")!;
    return new Response(null, { status, headers: { location } });
  }
  if (path === "/head") return new Response("0123456789abcdef", { headers: { "content-type": "text/plain" } });
  if (path === "/no-content") return new Response(null, { status: 204, headers: { "x-was": "204" } });
  if (path === "/not-modified") return new Response(null, { status: 304, headers: { etag: '"v1"', "x-was": "304" } });
  if (path === "/sized") {
    const size = Number(new URL(`http://x${target}`).searchParams.get("n"));
    return new Response(SIZED_BODIES.get(size)!, { headers: { "content-type": "application/octet-stream" } });
  }
  return new Response(`backend ${request.method} ${target}`);
}

beforeAll(async () => {
  backend = startBackend("headers", route);
  lb = await startTestLb([backend.url]);
  lbPort = Number(new URL(lb.url).port);
});

afterAll(async () => {
  await lb?.stop();
  await backend?.stop();
});

/** One request over a fresh raw socket; `Connection: close` so lb ends it and we get exactly one response. */
async function raw(requestLine: string, headerLines: string[] = [], port = lbPort): Promise<RawResponse> {
  const hasHost = headerLines.some((h) => /^host:/i.test(h));
  const lines = [requestLine, ...(hasHost ? [] : ["Host: app.example"]), ...headerLines];
  if (!headerLines.some((h) => /^connection:/i.test(h))) lines.push("Connection: close");
  return parseRaw(await rawRequest(port, `${lines.join("\r\n")}\r\n\r\n`));
}

describe("X-Forwarded-* and Host", () => {
  test("X-Forwarded-For is appended to, Proto is http, Host and X-Forwarded-Host are the client's Host", async () => {
    const response = await raw("GET /xff HTTP/1.1", ["Host: app.example", "X-Forwarded-For: 1.2.3.4"]);
    expect(response.status).toBe(200);
    const { headers } = await arrival("/xff");
    expect(headers.get("x-forwarded-for")).toBe("1.2.3.4, 127.0.0.1");
    expect(headers.get("x-forwarded-proto")).toBe("http");
    expect(headers.get("x-forwarded-host")).toBe("app.example");
    expect(headers.get("host")).toBe("app.example");
  });

  test("without an incoming X-Forwarded-For the client address starts the list; fetch's Host reaches the backend", async () => {
    const response = await fetch(`${lb.url}/xff-fetch`, { headers: { host: "shop.example:8443" }, decompress: false });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const { headers } = await arrival("/xff-fetch");
    expect(headers.get("x-forwarded-for")).toBe("127.0.0.1");
    expect(headers.get("host")).toBe("shop.example:8443");
    expect(headers.get("x-forwarded-host")).toBe("shop.example:8443");
    expect(headers.get("x-forwarded-proto")).toBe("http");
  });

  test("a Connection header naming Host or the fields lb sets removes none of them (curl)", async () => {
    const proc = Bun.spawn(["curl", "-s", "-o", "/dev/null", "-H", "Host: app.example", "-H", "Connection: Host, X-Forwarded-For, X-Request-Id",
      "-H", "X-Forwarded-For: 1.2.3.4", `${lb.url}/connection-host`]);
    expect(await proc.exited).toBe(0);
    const { headers } = await arrival("/connection-host");
    expect(headers.get("host")).toBe("app.example");
    // The client's own X-Forwarded-For was meant for this hop only (it listed it), so lb's value starts afresh.
    expect(headers.get("x-forwarded-for")).toBe("127.0.0.1");
    expect(headers.get("x-request-id")).toBeString();
  });

  test("a client's own X-Forwarded-Proto/Host are replaced by what lb saw, not trusted", async () => {
    await raw("GET /xf-spoof HTTP/1.1", ["Host: real.example", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example"]);
    const { headers } = await arrival("/xf-spoof");
    expect(headers.get("x-forwarded-proto")).toBe("http");
    expect(headers.get("x-forwarded-host")).toBe("real.example");
  });
});

describe("hop-by-hop headers", () => {
  test("are not forwarded to the backend; end-to-end headers are", async () => {
    const hopHeaders = [
      "Host: app.example",
      "Connection: close, X-Secret-Hop",
      "X-Secret-Hop: 1",
      "Keep-Alive: timeout=5, max=10",
      "Proxy-Authorization: Basic bWFsbG9yeTpzZWNyZXQ=",
      "Proxy-Connection: keep-alive",
      "TE: trailers",
      "Upgrade: foo",
      "X-Normal: yes",
      "Authorization: Bearer end-to-end",
      "Cookie: session=abc",
      "Accept-Language: nl",
    ];
    // Sent straight to the backend, every one of them is visible to it, so their absence below is lb's doing.
    await raw("GET /hop-direct HTTP/1.1", hopHeaders, backend.port);
    const direct = (await arrival("/hop-direct")).headers;
    for (const name of ["x-secret-hop", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade"]) {
      expect({ name, direct: direct.has(name) }).toEqual({ name, direct: true });
    }

    const response = await raw("GET /hop-request HTTP/1.1", hopHeaders);
    expect(response.status).toBe(200);
    const { headers } = await arrival("/hop-request");
    for (const name of ["x-secret-hop", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade"]) {
      expect({ name, value: headers.get(name) }).toEqual({ name, value: null });
    }
    // lb's own upstream client may say keep-alive on its connection, but the client's Connection value must not pass.
    expect(headers.get("connection") ?? "keep-alive").toBe("keep-alive");
    expect(headers.get("x-normal")).toBe("yes");
    expect(headers.get("authorization")).toBe("Bearer end-to-end");
    expect(headers.get("cookie")).toBe("session=abc");
    expect(headers.get("accept-language")).toBe("nl");
  });

  test("are not passed back to the client; the rest of the backend's headers are", async () => {
    // The backend itself does send them, so their absence below is lb's doing.
    const direct = await raw("GET /hop-response HTTP/1.1", [], backend.port);
    expect(values(direct, "x-drop-me")).toEqual(["1"]);
    expect(values(direct, "proxy-authenticate")).toHaveLength(1);

    const response = await raw("GET /hop-response HTTP/1.1");
    expect(response.status).toBe(200);
    const names = response.headers.map(([n]) => n);
    expect(names).not.toContain("x-drop-me");
    expect(names).not.toContain("keep-alive");
    expect(names).not.toContain("proxy-authenticate");
    for (const value of values(response, "connection")) expect(value.toLowerCase()).not.toContain("x-drop-me");
    expect(values(response, "x-keep-me")).toEqual(["yes"]);
    expect(response.rest).toBe("hop");
  });
});

describe("response headers and statuses passed through", () => {
  test("several Set-Cookie headers stay separate", async () => {
    const response = await fetch(`${lb.url}/cookies`, { decompress: false });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual([
      "a=1; Path=/; HttpOnly",
      "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/",
      "c=3, with comma; Secure",
    ]);
    expect(await response.text()).toBe("cookies");

    const wire = await raw("GET /cookies HTTP/1.1");
    expect(values(wire, "set-cookie")).toHaveLength(3);
  });

  for (const status of [301, 302, 303, 307, 308]) {
    test(`a ${status} redirect reaches the client with its Location; lb does not follow it`, async () => {
      const to = `http://elsewhere.example/next?from=${status}`;
      const target = `/redirect/${status}?to=${encodeURIComponent(to)}`;
      const response = await fetch(`${lb.url}${target}`, { redirect: "manual", decompress: false });
      expect(response.status).toBe(status);
      expect(response.headers.get("location")).toBe(to);
      await response.arrayBuffer();
      expect(arrivals(target)).toHaveLength(1);
      expect(received.some((r) => r.target.startsWith("/next"))).toBe(false);
    });
  }

  test("a relative Location is passed unchanged, not resolved against the backend's address", async () => {
    const target = `/redirect/302?to=${encodeURIComponent("/login?next=%2Fcart")}`;
    const response = await raw(`GET ${target} HTTP/1.1`);
    expect(response.status).toBe(302);
    expect(values(response, "location")).toEqual(["/login?next=%2Fcart"]);
  });
});

describe("responses without a body", () => {
  test("HEAD: headers only, and the backend's Content-Length is kept", async () => {
    const direct = await raw("HEAD /head HTTP/1.1", [], backend.port);
    expect(values(direct, "content-length")).toEqual(["16"]);

    const response = await raw("HEAD /head HTTP/1.1");
    expect(response.status).toBe(200);
    expect(response.rest).toBe("");
    expect(values(response, "content-length")).toEqual(["16"]);
    expect(values(response, "transfer-encoding")).toEqual([]);
    expect((await arrival("/head")).method).toBe("HEAD");
  });

  test("HEAD answered without a length (a chunked GET): no invented content-length: 0 (curl -I)", async () => {
    const unsized = rawBackend("/health", "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n");
    const viaLb = await startTestLb([unsized.url], { "health-path": "/health" });
    try {
      const proc = Bun.spawn(["curl", "-sS", "-I", "--max-time", "3", `${viaLb.url}/page`], { stdout: "pipe" });
      const head = (await new Response(proc.stdout).text()).toLowerCase();
      expect(await proc.exited).toBe(0);
      expect(head).toStartWith("http/1.1 200");
      expect(head).toContain("content-encoding: gzip");
      expect(head).not.toContain("content-length");
      expect(head).toContain("transfer-encoding: chunked");
    } finally {
      await viaLb.stop();
      await unsized.stop();
    }
  });

  test("204: nothing after the header block, no framing headers", async () => {
    const response = await raw("GET /no-content HTTP/1.1");
    expect(response.status).toBe(204);
    expect(values(response, "x-was")).toEqual(["204"]);
    expect(response.rest).toBe("");
    expect(values(response, "transfer-encoding")).toEqual([]);
    expect(values(response, "content-length").filter((v) => v !== "0")).toEqual([]);
  });

  test("304: nothing after the header block, validators kept", async () => {
    const response = await raw("GET /not-modified HTTP/1.1", ['If-None-Match: "v1"']);
    expect(response.status).toBe(304);
    expect(values(response, "etag")).toEqual(['"v1"']);
    expect(response.rest).toBe("");
    expect(values(response, "transfer-encoding")).toEqual([]);
    expect((await arrival("/not-modified")).headers.get("if-none-match")).toBe('"v1"');
  });

  test("bodiless responses leave nothing behind on a kept-alive connection", async () => {
    // One request at a time (Bun.serve drops pipelined requests behind an async handler, so no pipelining):
    // any stray body byte after HEAD/204/304 would show up in front of the next status line.
    const text = await sequentialExchange(lbPort, [
      "HEAD /head HTTP/1.1\r\nHost: app.example\r\n\r\n",
      "GET /no-content HTTP/1.1\r\nHost: app.example\r\n\r\n",
      "GET /not-modified HTTP/1.1\r\nHost: app.example\r\n\r\n",
      "GET /last HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    ]);
    const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(responses.map((r) => parseRaw(r).status)).toEqual([200, 204, 304, 200]);
    expect(responses.slice(0, 3).map((r) => parseRaw(r).rest)).toEqual(["", "", ""]);
    expect(parseRaw(responses[3]!).rest).toBe("backend GET /last");
  });
});

describe("request line", () => {
  test("method, path and query arrive exactly as sent", async () => {
    const target = "/a/b%20c?x=1&y=%2F&x=2";
    const response = await raw(`PATCH ${target} HTTP/1.1`, ["Content-Length: 0"]);
    expect(response.status).toBe(200);
    expect(response.rest).toBe(`backend PATCH ${target}`);
    const seen = await arrival(target);
    expect(seen.method).toBe("PATCH");
  });

  test("unusual methods and encoded characters are passed as they are", async () => {
    for (const [method, target] of [
      ["DELETE", "/items/%2F..%2Fetc?force=true&empty=&dup=1&dup=2"],
      ["OPTIONS", "/cors?origin=https%3A%2F%2Fa.example"],
      ["PUT", "/%E2%9C%93/caf%C3%A9?q=a+b%2Bc"],
    ] as const) {
      const response = await raw(`${method} ${target} HTTP/1.1`, ["Content-Length: 0"]);
      expect(response.rest).toBe(`backend ${method} ${target}`);
      expect((await arrival(target)).method).toBe(method);
    }
  });

  // Bun's fetch collapses leading slashes of the request target; lb hands it the path unchanged (see pathOf's unit
  // test). This starts passing, and must become a plain test, when Bun sends the target as given.
  test("a path that starts with // is passed unchanged", async () => {
    const target = "//double/slash?q=1";
    const response = await raw(`GET ${target} HTTP/1.1`);
    expect(response.status).toBe(200);
    expect(response.rest).toBe(`backend GET ${target}`);
  });

  test("absolute-form goes to the configured backend with only its path and query", async () => {
    const before = received.length;
    const response = await raw("GET http://elsewhere.example/x?q=1 HTTP/1.1", ["Host: elsewhere.example"]);
    expect(response.status).toBe(200);
    expect(response.rest).toBe("backend GET /x?q=1"); // the answer came from our backend
    const seen = await arrival("/x?q=1");
    expect(seen.method).toBe("GET");
    expect(seen.headers.get("host")).toBe("elsewhere.example");
    expect(received.length).toBe(before + 1);
    expect(lb.access.some((e) => e.path === "/x?q=1" && e.backend === `127.0.0.1:${backend.port}` && e.status === 200)).toBe(true);
  });

  test("a Host that is not a valid authority does not change the forwarded path", async () => {
    // Bun hands lb a bare "/secret/p?q=1" as request.url here; lb must still forward exactly that (or refuse with
    // 400). The backend is a plain Bun.serve: startBackend's `new URL(request.url)` throws on such a bare URL.
    const targets: string[] = [];
    const plain = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      development: false,
      fetch(request) {
        const target = targetOf(request.url);
        if (!request.headers.get("user-agent")?.startsWith("lb-health-check")) targets.push(target);
        return new Response(`plain ${target}`);
      },
    });
    const lbForPlain = await startTestLb([`http://127.0.0.1:${plain.port}`]);
    try {
      const response = await raw("GET /secret/p?q=1 HTTP/1.1", ["Host: a/b"], Number(new URL(lbForPlain.url).port));
      if (response.status === 400) {
        expect(targets).toEqual([]);
      } else {
        expect(response.rest).toBe("plain /secret/p?q=1");
        expect(targets).toEqual(["/secret/p?q=1"]);
      }
    } finally {
      await lbForPlain.stop();
      await plain.stop(true);
    }
  });
});

describe("Content-Length of fixed-size responses", () => {
  for (const size of BODY_SIZES.filter((n) => n <= RESPONSE_BUFFER_LIMIT_BYTES)) {
    test(`${size} bytes: the backend's Content-Length reaches the client unchanged, no chunking`, async () => {
      const direct = await raw(`GET /sized?n=${size} HTTP/1.1`, [], backend.port);
      expect(values(direct, "content-length")).toEqual([String(size)]);

      const response = await raw(`GET /sized?n=${size} HTTP/1.1`);
      expect(response.status).toBe(200);
      expect(values(response, "content-length")).toEqual([String(size)]);
      expect(values(response, "transfer-encoding")).toEqual([]);
      expect(Buffer.from(response.rest, "latin1").equals(Buffer.from(SIZED_BODIES.get(size)!))).toBe(true);
    });
  }

  // Above the buffer limit the body streams, and Bun.serve sends a streamed body chunked (oven-sh/bun#10507).
  // Every byte still arrives; this test starts passing, and must be turned into a plain test, when Bun keeps the length.
  test.failing("4 MiB streamed: Content-Length kept (fails until Bun keeps it on streamed bodies)", async () => {
    const response = await raw(`GET /sized?n=${4 * 1024 * 1024} HTTP/1.1`);
    expect(Buffer.from(response.rest, "latin1").length).toBeGreaterThan(0);
    expect(values(response, "content-length")).toEqual([String(4 * 1024 * 1024)]);
  });

  test("4 MiB streamed: every byte arrives, chunked", async () => {
    const proc = Bun.spawn(["curl", "-sS", "--max-time", "10", `${lb.url}/sized?n=${4 * 1024 * 1024}`], { stdout: "pipe" });
    const body = new Uint8Array(await new Response(proc.stdout).arrayBuffer());
    expect(await proc.exited).toBe(0);
    expect(Buffer.from(body).equals(Buffer.from(SIZED_BODIES.get(4 * 1024 * 1024)!))).toBe(true);
  });

  test("curl -i sees the same Content-Length as the backend sent", async () => {
    const proc = Bun.spawn(["curl", "-sS", "-i", "--max-time", "10", `${lb.url}/sized?n=100000`], { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), proc.exited]);
    expect(code).toBe(0);
    const head = Buffer.from(out).toString("latin1");
    const parsed = parseRaw(head);
    expect(values(parsed, "content-length")).toEqual(["100000"]);
    expect(parsed.rest.length).toBe(100_000);
  });
});
