/**
 * compress = true: the coding each client's Accept-Encoding asks for (decoded here with the codec of that coding, and
 * by curl --compressed), the answers left alone, streamed answers compressed as they stream (an SSE event is not held
 * back), a client leaving mid-stream, HTTP/2. Real sockets: Bun backends, lb in-process, fetch without decompression,
 * curl.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { environmentLayer } from "../../src/config/environment.ts";
import { readConfigFile, resolveConfig } from "../../src/config/load.ts";
import { chooseEncoding, compressibleType } from "../../src/proxy/compression.ts";
import { runCommand, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend, lbFor } = stoppedAfterEach({ "health-interval": "1m", compress: true });

/** 8 KiB of text that compresses well. */
const TEXT = Array.from({ length: 400 }, (_, i) => `line ${i}: the quick brown fox\n`).join("").slice(0, 8192);

/**
 * A backend with an answer of each kind, by path. /events sends one event, then the next only once told to
 * (sendNext), then ends; /endless never ends; cancelled() tells whether lb cancelled either.
 */
function answers() {
  const next = Promise.withResolvers<void>();
  let cancelled = false;
  const encoder = new TextEncoder();
  const text = (headers: Record<string, string> = {}, status = 200, body: string | Uint8Array | null = TEXT) =>
    new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });
  const stream = (type: string, pull: (controller: ReadableStreamDefaultController<Uint8Array>) => void | Promise<void>) =>
    new Response(new ReadableStream<Uint8Array>({ pull, cancel: () => void (cancelled = true) }), { headers: { "content-type": type } });
  const server = backend("answers", (request) => {
    switch (new URL(request.url).pathname) {
      case "/text":
        return text({ etag: '"v1"', "accept-ranges": "bytes", vary: "Origin" });
      case "/small":
        return text({}, 200, "a small answer ".repeat(60)); // 900 bytes
      case "/png":
        return text({ "content-type": "image/png" });
      case "/svg":
        return text({ "content-type": "image/svg+xml" });
      case "/untyped":
        return new Response(encoder.encode(TEXT));
      case "/encoded":
        return text({ "content-encoding": "gzip" }, 200, Bun.gzipSync(TEXT));
      case "/no-transform":
        return text({ "cache-control": "public, no-transform" });
      case "/no-content":
        return new Response(null, { status: 204 });
      case "/not-modified":
        return new Response(null, { status: 304, headers: { etag: '"v1"' } });
      case "/range":
        return text({ "content-range": `bytes 0-4095/${TEXT.length}` }, 206, TEXT.slice(0, 4096));
      case "/events": {
        let step = 0;
        return stream("text/event-stream", async (controller) => {
          step++;
          if (step === 1) controller.enqueue(encoder.encode("data: first\n\n"));
          else if (step === 2) {
            await next.promise;
            controller.enqueue(encoder.encode("data: second\n\n"));
          } else controller.close();
        });
      }
      case "/endless":
        return stream("text/plain", (controller) => controller.enqueue(encoder.encode(TEXT)));
      default:
        return new Response("ok");
    }
  });
  return { url: server.url, sendNext: () => next.resolve(), cancelled: () => cancelled };
}

function decode(encoding: string | null, bytes: Uint8Array): string {
  const decoded =
    encoding === "gzip" ? zlib.gunzipSync(bytes) : encoding === "br" ? zlib.brotliDecompressSync(bytes) : encoding === "zstd" ? Bun.zstdDecompressSync(bytes) : bytes;
  return new TextDecoder().decode(decoded);
}

/** GET (or another method) with this Accept-Encoding; the body as it came over the wire, undecoded. */
async function get(url: string, acceptEncoding: string | null, init: RequestInit = {}) {
  const headers = acceptEncoding === null ? {} : { "accept-encoding": acceptEncoding };
  const response = await fetch(url, { ...init, headers, decompress: false } as RequestInit);
  const raw = new Uint8Array(await response.arrayBuffer());
  return { response, raw, encoding: response.headers.get("content-encoding") };
}

describe("the coding an Accept-Encoding field asks for", () => {
  test.each([
    [null, null],
    ["", null],
    ["gzip", "gzip"],
    ["x-gzip", "gzip"],
    ["GZIP, Br", "br"],
    ["gzip, deflate, br, zstd", "zstd"], // ties: lb's order, zstd first
    ["gzip;q=1.0, br;q=0.8, zstd;q=0.5", "gzip"],
    ["br;q=0.9, gzip ; q=0.95", "gzip"],
    ["zstd;q=0, br;q=0", null],
    ["*", "zstd"],
    ["*;q=0.5, gzip", "gzip"],
    ["zstd;q=0, *", "br"],
    ["*;q=0", null],
    ["identity", null],
    ["identity, gzip;q=0.5", null], // identity ranked higher
    ["identity;q=0.5, gzip", "gzip"],
    ["identity;q=0, gzip", "gzip"],
    ["deflate, compress", null], // codings lb does not make
    ["gzip;q=2, br;q=abc, zstd;q=0.001", "zstd"], // malformed q values ignore their element
    ["gzip;level=9", "gzip"],
  ])("%p -> %p", (field, expected) => {
    expect(chooseEncoding(field)).toBe(expected as ReturnType<typeof chooseEncoding>);
  });

  test("types that are compressed already are left out; text, JSON, SVG and the like are not", () => {
    const compressed = ["image/png", "image/webp", "video/mp4", "audio/mpeg", "font/woff2", "application/zip", "application/gzip", "application/octet-stream", "application/pdf", "application/grpc+proto", "application/epub+zip", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "nonsense"];
    const plain = ["text/html; charset=utf-8", "TEXT/CSS", "application/json", "application/javascript", "image/svg+xml", "text/event-stream", "application/wasm", "font/ttf", "application/xml"];
    expect(compressed.filter(compressibleType)).toEqual([]);
    expect(plain.filter((type) => !compressibleType(type))).toEqual([]);
  });
});

describe("compress = true", () => {
  for (const encoding of ["zstd", "br", "gzip"]) {
    test(`${encoding}: the client decodes the backend's text; Content-Length is the compressed size, Vary added to the backend's, the ETag weak, no Accept-Ranges`, async () => {
      const lb = await lbFor([answers().url]);
      const { response, raw } = await get(`${lb.url}/text`, encoding);
      expect(response.headers.get("content-encoding")).toBe(encoding);
      expect(decode(encoding, raw)).toBe(TEXT);
      expect(raw.byteLength).toBeLessThan(TEXT.length / 4);
      expect(response.headers.get("content-length")).toBe(String(raw.byteLength));
      expect(response.headers.get("vary")).toBe("Origin, Accept-Encoding");
      expect(response.headers.get("etag")).toBe('W/"v1"');
      expect(response.headers.get("accept-ranges")).toBeNull();
    });
  }

  test("curl --compressed gets the text, in the coding it ranks first among lb's (zstd)", async () => {
    const lb = await lbFor([answers().url]);
    const proc = Bun.spawn(["curl", "-s", "--compressed", "-D", "-", `${lb.url}/text`], { stdout: "pipe" });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    const [head, body] = [out.slice(0, out.indexOf("\r\n\r\n")), out.slice(out.indexOf("\r\n\r\n") + 4)];
    expect(head.toLowerCase()).toContain("content-encoding: zstd");
    expect(body).toBe(TEXT);
  });

  test.each([
    ["gzip;q=0.5, br;q=0.8", "br"],
    ["zstd;q=0, *", "br"],
    ["identity, gzip;q=0.5", null],
    ["gzip;q=0", null],
    [null, null],
  ])("Accept-Encoding %p gets %p, with Vary either way", async (field, expected) => {
    const lb = await lbFor([answers().url]);
    const { response, raw, encoding } = await get(`${lb.url}/text`, field);
    expect(encoding).toBe(expected);
    expect(decode(encoding, raw)).toBe(TEXT);
    expect(response.headers.get("vary")).toBe("Origin, Accept-Encoding");
  });

  test("each answer that is left alone reaches the client as the backend sent it", async () => {
    const lb = await lbFor([answers().url]);
    const unchanged = async (path: string, init: RequestInit = {}) => {
      const { response, raw } = await get(`${lb.url}${path}`, "gzip, br, zstd", init);
      return { status: response.status, encoding: response.headers.get("content-encoding"), vary: response.headers.get("vary"), body: new TextDecoder().decode(raw) };
    };
    const left = { status: 200, encoding: null, vary: null, body: TEXT };
    expect(await unchanged("/small")).toEqual({ ...left, body: "a small answer ".repeat(60) }); // under compress-min-size (1 KiB)
    expect(await unchanged("/png")).toEqual(left);
    expect(await unchanged("/untyped")).toEqual(left);
    expect(await unchanged("/no-transform")).toEqual(left);
    expect(await unchanged("/range")).toEqual({ ...left, status: 206, body: TEXT.slice(0, 4096) });
    expect(await unchanged("/no-content")).toEqual({ ...left, status: 204, body: "" });
    expect(await unchanged("/not-modified")).toEqual({ ...left, status: 304, body: "" });
    expect(await unchanged("/text", { method: "HEAD" })).toMatchObject({ status: 200, encoding: null, body: "" });
    // The backend's own gzip: passed on, not compressed twice.
    const encoded = await get(`${lb.url}/encoded`, "gzip, br, zstd");
    expect(encoded.encoding).toBe("gzip");
    expect(decode("gzip", encoded.raw)).toBe(TEXT);
    // SVG is an image that is text.
    expect((await get(`${lb.url}/svg`, "gzip")).encoding).toBe("gzip");
  });

  test("compress-min-size sets the least size compressed; compress = false (the default) compresses nothing", async () => {
    const url = answers().url;
    const raised = await lbFor([url], { "compress-min-size": "16k" });
    expect((await get(`${raised.url}/text`, "gzip")).encoding).toBeNull();
    const lowered = await lbFor([url], { "compress-min-size": 512 });
    expect((await get(`${lowered.url}/small`, "gzip")).encoding).toBe("gzip");
    const off = await lbFor([url], { compress: false });
    const { response, encoding } = await get(`${off.url}/text`, "gzip");
    expect([encoding, response.headers.get("vary"), response.headers.get("etag")]).toEqual([null, "Origin", '"v1"']);
  });

  test("the metrics count compressed answers by coding, and the bytes before and after; the access log the backend's", async () => {
    const lb = await lbFor([answers().url]);
    await get(`${lb.url}/text`, "br");
    await get(`${lb.url}/text`, "gzip");
    const { raw } = await get(`${lb.url}/text`, "gzip");
    await get(`${lb.url}/png`, "gzip");
    const counts = lb.lb.metrics.of(lb.lb.pool.backends[0]!.url);
    expect([counts.compressedZstd, counts.compressedBr, counts.compressedGzip]).toEqual([0, 1, 2]);
    expect(counts.compressionIn).toBe(3 * TEXT.length);
    expect(counts.compressionOut).toBeGreaterThan(2 * raw.byteLength);
    expect(counts.compressionOut).toBeLessThan(3 * raw.byteLength);
    // The access log and lb_response_body_bytes_total count the body as the backend sent it.
    await waitFor(() => lb.access.length === 4, "four access lines");
    expect(lb.access.map((entry) => entry.bytes)).toEqual([TEXT.length, TEXT.length, TEXT.length, TEXT.length]);
    expect(counts.responseBytes).toBe(4 * TEXT.length);
  });
});

describe("a streamed answer", () => {
  for (const encoding of ["zstd", "br", "gzip"]) {
    test(`${encoding}: an SSE event reaches the client, decoded, before the stream ends`, async () => {
      const events = answers();
      const lb = await lbFor([events.url]);
      const response = await fetch(`${lb.url}/events`, { headers: { "accept-encoding": encoding }, decompress: false } as RequestInit);
      expect(response.headers.get("content-encoding")).toBe(encoding);
      expect(response.headers.get("content-length")).toBeNull();
      const decoder = encoding === "gzip" ? zlib.createGunzip() : encoding === "br" ? zlib.createBrotliDecompress() : zlib.createZstdDecompress();
      let text = "";
      decoder.on("data", (piece: Buffer) => (text += piece.toString()));
      const ended = new Promise((resolve) => decoder.on("end", resolve));
      const reading = (async () => {
        for await (const piece of response.body!) decoder.write(piece);
        decoder.end();
      })();
      // The backend sends the second event only after the first was decoded here: held back, this would time out.
      await waitFor(() => text === "data: first\n\n", () => `the first event (decoded so far: ${JSON.stringify(text)})`);
      events.sendNext();
      await reading;
      await ended;
      expect(text).toBe("data: first\n\ndata: second\n\n");
    });
  }

  test("a client that leaves mid-stream: the backend's stream is cancelled, nothing stays in flight, and lb goes on serving", async () => {
    const events = answers();
    const lb = await lbFor([events.url]);
    const controller = new AbortController();
    const response = await fetch(`${lb.url}/endless`, { headers: { "accept-encoding": "gzip" }, decompress: false, signal: controller.signal } as RequestInit);
    expect(response.headers.get("content-encoding")).toBe("gzip");
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 256 * 1024) received += (await reader.read()).value?.byteLength ?? 0;
    controller.abort();
    await waitFor(events.cancelled, "the backend's stream to be cancelled");
    const [target] = lb.lb.pool.backends;
    await waitFor(() => target!.inflight === 0, "no request in flight");
    await waitFor(() => lb.access.some((entry) => entry.path === "/endless"), "the access line");
    const { encoding, raw } = await get(`${lb.url}/text-again`, "gzip");
    expect([encoding, new TextDecoder().decode(raw)]).toEqual([null, "ok"]);
    expect(lb.logs.filter((line) => line.startsWith("error"))).toEqual([]);
  });

  test("a backend that breaks off its stream: the client's answer is cut too, never ended as if whole", async () => {
    const listener = Bun.listen<undefined>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, request) {
          if (!request.toString("latin1").startsWith("GET /cut")) return void socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
          const piece = Buffer.from(TEXT);
          socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")]));
          setImmediate(() => socket.end()); // no last chunk
        },
        error() {},
      },
    });
    cleanup.push(() => listener.stop(true));
    const lb = await lbFor([`http://127.0.0.1:${listener.port}`]);
    const response = await fetch(`${lb.url}/cut`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(response.headers.get("content-encoding")).toBe("gzip");
    await expect(response.arrayBuffer()).rejects.toThrow();
    await waitFor(() => lb.lb.metrics.of(`http://127.0.0.1:${listener.port}`).streamsCut === 1, "the cut counted");
  });

  test("over HTTP/2 (h2c), curl --compressed gets the text, and the event stream as it streams", async () => {
    const events = answers();
    const lb = await lbFor([events.url], { http2: "on" });
    const curl = (path: string) =>
      Bun.spawn(["curl", "-s", "-N", "--http2-prior-knowledge", "--compressed", "-D", "-", "--max-time", "10", `${lb.url}${path}`], { stdout: "pipe" });
    const whole = await new Response(curl("/text").stdout).text();
    expect(whole).toStartWith("HTTP/2 200");
    expect(whole).toContain("content-encoding: zstd\r\n");
    expect(whole.slice(whole.indexOf("\r\n\r\n") + 4)).toBe(TEXT);
    const streaming = curl("/events");
    let out = "";
    const reading = (async () => {
      for await (const piece of streaming.stdout) out += new TextDecoder().decode(piece);
    })();
    await waitFor(() => out.endsWith("data: first\n\n"), () => `the first event (so far: ${JSON.stringify(out)})`);
    events.sendNext();
    await reading;
    expect(await streaming.exited).toBe(0);
    expect(out).toContain("content-encoding: zstd\r\n");
    expect(out.slice(out.indexOf("\r\n\r\n") + 4)).toBe("data: first\n\ndata: second\n\n");
  });
});

describe("the settings", () => {
  const dir = mkdtempSync(join(tmpdir(), "lb-compress-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a pool compresses while the default pool does not: the route decides", async () => {
    const plain = answers();
    const compressing = answers();
    const file = join(dir, "pools.toml");
    writeFileSync(file, `[pools.docs]\nbackends = ["${compressing.url}"]\ncompress = true\n\n[[routes]]\npath-prefix = "/docs/"\nstrip-prefix = true\npool = "docs"\n`);
    const layer = await readConfigFile(file);
    const lb = await lbFor([plain.url], { ...layer.values, compress: false });
    expect((await get(`${lb.url}/docs/text`, "gzip")).encoding).toBe("gzip");
    expect((await get(`${lb.url}/text`, "gzip")).encoding).toBeNull();
  });

  test("a route sets compression over its pool's: on for one path of a pool without it, off for one of a pool with it", async () => {
    const plain = answers();
    const compressing = answers();
    const file = join(dir, "routes.toml");
    writeFileSync(
      file,
      `[pools.docs]\nbackends = ["${compressing.url}"]\ncompress = true\n\n` +
        `[[routes]]\npath-prefix = "/docs/raw/"\nstrip-prefix = true\npool = "docs"\ncompress = false\n\n` +
        `[[routes]]\npath-prefix = "/docs/"\nstrip-prefix = true\npool = "docs"\n\n` +
        `[[routes]]\npath-prefix = "/small/"\nstrip-prefix = true\npool = "default"\ncompress = true\ncompress-min-size = 512\n\n` +
        `[[routes]]\npool = "default"\n`,
    );
    const lb = await lbFor([plain.url], { ...(await readConfigFile(file)).values, compress: false });
    expect((await get(`${lb.url}/docs/text`, "gzip")).encoding).toBe("gzip"); // the pool's
    expect((await get(`${lb.url}/docs/raw/text`, "gzip")).encoding).toBeNull(); // the route's, over the pool's
    expect((await get(`${lb.url}/small/small`, "gzip")).encoding).toBe("gzip"); // 900 bytes, over the route's 512
    expect((await get(`${lb.url}/small`, "gzip")).encoding).toBeNull(); // the default pool's: off
    const bad = join(dir, "bad-route.toml");
    writeFileSync(bad, `backends = ["http://10.0.0.1:8080"]\n\n[[routes]]\npool = "default"\ncompress-min-size = "lots"\n`);
    const { code, stderr } = await runCommand(["validate", bad]);
    expect([code, stderr]).toEqual([2, `${bad}:5: routes[0].compress-min-size: "lots" is not a size; write 512k, 10mb, 1g or a number of bytes\n`]);
  });

  test("a reload turns compression on for the requests that follow, and GET /api/config shows it", async () => {
    const url = answers().url;
    const lb = await lbFor([url], { compress: false });
    expect((await get(`${lb.url}/text`, "gzip")).encoding).toBeNull();
    const values = { host: "127.0.0.1", port: 0, admin: "127.0.0.1:0", backends: [url], compress: true, "compress-min-size": "2k" };
    lb.lb.reload(resolveConfig([{ source: "test", values }], { stdoutIsTTY: false }));
    expect((await get(`${lb.url}/text`, "gzip")).encoding).toBe("gzip");
    const shown = (await (await fetch(new URL("/api/config", lb.lb.adminUrl!))).json()) as Record<string, unknown>;
    expect([shown.compress, shown["compress-min-size"]]).toEqual([true, "2kb"]);
  });

  test("lb validate names each bad value with its file and line, in a pool too", async () => {
    const file = join(dir, "bad.toml");
    writeFileSync(file, `backends = ["http://10.0.0.1:8080"]\ncompress = "yes"\n\n[pools.api]\nbackends = ["http://10.0.0.2:8080"]\ncompress-min-size = "lots"\n`);
    const { code, stderr } = await runCommand(["validate", file]);
    expect(code).toBe(2);
    expect(stderr.trimEnd().split("\n")).toEqual([
      `${file}:2: compress: "yes" is not true or false`,
      `${file}:6: pools.api.compress-min-size: "lots" is not a size; write 512k, 10mb, 1g or a number of bytes`,
    ]);
  });

  test("--compress and --compress-min-size on the command line and in --help; LB_COMPRESS in the environment", async () => {
    const help = await runCommand(["--help"]);
    expect(help.stdout).toMatch(/--compress {2,}Compress answers \(zstd, br or gzip/);
    expect(help.stdout).toMatch(/--compress-min-size <size> +With --compress, answers smaller than this go uncompressed\s+\(default 1k\)/);
    const file = join(dir, "good.toml");
    writeFileSync(file, `backends = ["http://10.0.0.1:8080"]\n`);
    expect((await runCommand(["validate", file, "--compress", "--compress-min-size", "4k"])).code).toBe(0);
    const bad = await runCommand(["validate", file, "--compress", "--compress-min-size", "-1"]);
    expect([bad.code, bad.stderr]).toEqual([2, 'command line: compress-min-size: "-1" is not a size; write 512k, 10mb, 1g or a number of bytes\n']);
    const fromEnv = resolveConfig([{ source: "test", values: { backends: ["http://a:1"] } }, environmentLayer({ LB_COMPRESS: "true", LB_COMPRESS_MIN_SIZE: "4k" })], { stdoutIsTTY: false });
    expect([fromEnv.compress, fromEnv.compressMinSize]).toEqual([true, 4096]);
  });
});
