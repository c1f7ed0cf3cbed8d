/**
 * Forwarding, the body side: large downloads and uploads stream through lb with flat memory and intact bytes,
 * compressed bodies pass byte for byte, small and chunked request bodies arrive whole, and a client that goes away
 * cancels the backend request. Real Bun.serve backends, lb in this process or as a child process, real clients.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InProcessLb, type LbProcess, type TestBackend, rawBackend, rawRequest, spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const MB = 1024 * 1024;
const STREAM_BYTES = 200 * MB;
const CHUNK_BYTES = 64 * 1024;
/** How much lb's resident memory may grow while 200 MB pass through it: far less than the body itself. */
const RSS_GROWTH_LIMIT = 150 * MB;

/** A deterministic pseudo-random byte source (xorshift32), cheap enough to make 200 MB in well under a second. */
function pseudoRandom(seed: number): (out: Uint8Array) => void {
  let state = seed >>> 0 || 1;
  return (out) => {
    const words = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      words[i] = state;
    }
  };
}

/** A stream of `total` pseudo-random bytes made on demand, hashing what it hands out; `digest()` once it ended. */
function generatedStream(total: number, seed: number) {
  const fill = pseudoRandom(seed);
  const hasher = new Bun.CryptoHasher("sha256");
  let sent = 0;
  let digest: string | null = null;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent >= total) {
          digest = hasher.digest("hex");
          controller.close();
          return;
        }
        const chunk = new Uint8Array(Math.min(CHUNK_BYTES, total - sent));
        fill(chunk);
        hasher.update(chunk);
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, sent: () => sent, digest: () => digest };
}

async function hashStream(stream: ReadableStream<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    hasher.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha256: hasher.digest("hex"), bytes };
}

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");

/**
 * Watches a process's resident memory around one transfer: the kernel's high-water mark (VmHWM, reset first
 * through clear_refs when allowed) plus VmRSS samples, so a brief spike cannot slip between two samples.
 */
function memoryWatch(pid: number) {
  const status = () => readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status())?.[1] ?? NaN) * 1024;
  let hwmReset = false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    hwmReset = true;
  } catch {
    // Without the reset, VmHWM may include startup; the samples below still bound the peak.
  }
  const before = field("VmRSS");
  let sampled = before;
  const timer = setInterval(() => {
    sampled = Math.max(sampled, field("VmRSS"));
  }, 5);
  return {
    before,
    stop(): { before: number; peak: number } {
      clearInterval(timer);
      const peak = Math.max(sampled, field("VmRSS"), hwmReset ? field("VmHWM") : 0);
      return { before, peak };
    },
  };
}

interface CancelFlags {
  aborted: boolean;
  streamCancelled: boolean;
}

const mib = (bytes: number) => `${(bytes / MB).toFixed(1)} MiB`;

describe("200 MB through a spawned lb", () => {
  /**
   * One backend for both directions. Bun.serve directly rather than startBackend, whose Bun.serve keeps Bun's
   * default 128 MiB request body limit and would answer a 200 MB upload with 413.
   */
  let backend: ReturnType<typeof Bun.serve>;
  let downloadSent: ReturnType<typeof generatedStream> | null = null;
  /** The Content-Length header of the last upload as the backend got it (null: none, so it came chunked). */
  let uploadContentLength: string | null | undefined;
  const seenContentLength = () => uploadContentLength;
  let lb: LbProcess;
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "lb-bodies-"));
    backend = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      development: false,
      idleTimeout: 0,
      maxRequestBodySize: 1024 * MB,
      async fetch(request) {
        const { pathname } = new URL(request.url);
        if (pathname === "/download") {
          downloadSent = generatedStream(STREAM_BYTES, 0x5eed);
          return new Response(downloadSent.stream, { headers: { "content-type": "application/octet-stream" } });
        }
        if (pathname === "/upload" && request.body) {
          uploadContentLength = request.headers.get("content-length");
          return Response.json(await hashStream(request.body));
        }
        return new Response("ok");
      },
    });
    // Health checks are not under test: one the busy backend answers late (200 MB in flight) would take it out.
    lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--health-interval", "1m", "--no-access-log", `http://127.0.0.1:${backend.port}`]);
  }, 15_000);

  afterAll(async () => {
    await lb?.kill();
    await backend?.stop(true);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("a download streams through with the backend's exact bytes and flat lb memory", async () => {
    const started = performance.now();
    const memory = memoryWatch(lb.proc.pid);
    const response = await fetch(`${lb.url}/download`, { decompress: false });
    expect(response.status).toBe(200);
    const result = await hashStream(response.body!);
    const { before, peak } = memory.stop();
    console.log(`download: ${mib(result.bytes)} in ${Math.round(performance.now() - started)} ms; lb RSS ${mib(before)} → peak ${mib(peak)}`);
    expect(result.bytes).toBe(STREAM_BYTES);
    expect(downloadSent?.digest()).toBeString();
    expect(result.sha256).toBe(downloadSent!.digest()!);
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
  }, 20_000);

  test("a streamed (chunked) upload reaches the backend intact with flat lb memory", async () => {
    const source = generatedStream(STREAM_BYTES, 0xc0ffee);
    uploadContentLength = undefined;
    const started = performance.now();
    const memory = memoryWatch(lb.proc.pid);
    const response = await fetch(`${lb.url}/upload`, { method: "POST", body: source.stream, decompress: false });
    expect(response.status).toBe(200);
    const result = (await response.json()) as { sha256: string; bytes: number };
    const { before, peak } = memory.stop();
    console.log(`chunked upload: ${mib(result.bytes)} in ${Math.round(performance.now() - started)} ms; lb RSS ${mib(before)} → peak ${mib(peak)}`);
    expect(source.sent()).toBe(STREAM_BYTES);
    expect(seenContentLength()).toBeNull(); // it really was sent without a length, so lb could not size it up front
    expect(result.bytes).toBe(STREAM_BYTES);
    expect(result.sha256).toBe(source.digest()!);
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
  }, 20_000);

  test("an upload with Content-Length (curl --data-binary @file) reaches the backend intact with flat lb memory", async () => {
    const file = join(tmp, "upload.bin");
    const source = generatedStream(STREAM_BYTES, 0xfeed);
    const writer = Bun.file(file).writer();
    for await (const chunk of source.stream) writer.write(chunk);
    await writer.end();
    uploadContentLength = undefined;

    const started = performance.now();
    const memory = memoryWatch(lb.proc.pid);
    const curl = Bun.spawn(
      ["curl", "-sS", "--max-time", "15", "-w", "\n%{http_code}", "-H", "content-type: application/octet-stream", "--data-binary", `@${file}`, `${lb.url}/upload`],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(curl.stdout).text(), new Response(curl.stderr).text(), curl.exited]);
    const { before, peak } = memory.stop();
    expect({ code, err }).toEqual({ code: 0, err: "" });
    const status = out.slice(out.lastIndexOf("\n") + 1);
    expect({ status, body: status === "200" ? "" : out }).toEqual({ status: "200", body: "" });
    const result = JSON.parse(out.slice(0, out.lastIndexOf("\n"))) as { sha256: string; bytes: number };
    console.log(`curl upload: ${mib(result.bytes)} in ${Math.round(performance.now() - started)} ms; lb RSS ${mib(before)} → peak ${mib(peak)}`);
    expect(seenContentLength()).toBe(String(STREAM_BYTES));
    expect(result.bytes).toBe(STREAM_BYTES);
    expect(result.sha256).toBe(source.digest()!);
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
  }, 20_000);
});

describe("bodies through an in-process lb", () => {
  const text = Array.from({ length: 40_000 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog\n`).join("");
  const plain = new TextEncoder().encode(text);
  const gzipped = Bun.gzipSync(plain);
  const seen: { path: string; headers: Headers; body: Uint8Array | null }[] = [];
  /** Per request id: did the backend's request.signal fire, and was its response stream cancelled. */
  const cancelled: Record<string, CancelFlags> = {};
  let backend: TestBackend;
  let lb: InProcessLb;

  beforeAll(async () => {
    backend = startBackend("bodies", async (request) => {
      const url = new URL(request.url);
      if (request.headers.get("user-agent")?.startsWith("lb-health-check")) return new Response("ok");
      const id = url.searchParams.get("id");
      if (url.pathname === "/hang" || url.pathname === "/trickle") {
        const flags: CancelFlags = { aborted: false, streamCancelled: false };
        cancelled[id!] = flags;
        request.signal.addEventListener("abort", () => void (flags.aborted = true));
        if (url.pathname === "/hang") return new Promise<Response>(() => {}); // never answers
        let timer: ReturnType<typeof setInterval> | undefined;
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode("first chunk\n"));
            timer = setInterval(() => {
              try {
                controller.enqueue(new Uint8Array(1024).fill(46));
              } catch {
                clearInterval(timer); // the stream is gone
              }
            }, 25);
          },
          cancel() {
            flags.streamCancelled = true;
            clearInterval(timer);
          },
        });
        return new Response(stream, { headers: { "content-type": "text/plain" } });
      }
      const headers = new Headers(request.headers);
      const body = request.body ? new Uint8Array(await request.arrayBuffer()) : null;
      seen.push({ path: url.pathname, headers, body });
      if (url.pathname === "/gzip") {
        return new Response(gzipped, { headers: { "content-encoding": "gzip", "content-type": "text/plain", vary: "Accept-Encoding" } });
      }
      return Response.json({ bytes: body?.byteLength ?? 0, sha256: body ? sha256(body) : null });
    });
    lb = await startTestLb([backend.url]);
  });

  afterAll(async () => {
    await lb?.stop();
    await backend?.stop();
  });

  const arrived = (path: string) => waitFor(() => seen.find((s) => s.path === path), `the backend to receive ${path}`);

  test("gzip passes byte for byte to curl (no Accept-Encoding sent), Content-Encoding kept, none added upstream", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lb-gzip-"));
    try {
      const bodyFile = join(dir, "body");
      const curl = Bun.spawn(["curl", "-sS", "--max-time", "10", "-D", "-", "-o", bodyFile, `${lb.url}/gzip`], { stdout: "pipe", stderr: "pipe" });
      const [head, code] = await Promise.all([new Response(curl.stdout).text(), curl.exited]);
      expect(code).toBe(0);
      expect(head).toMatch(/^content-encoding: gzip\r$/im);
      const got = new Uint8Array(readFileSync(bodyFile));
      expect(got.byteLength).toBe(gzipped.byteLength);
      expect(sha256(got)).toBe(sha256(gzipped));
      expect(new TextDecoder().decode(Bun.gunzipSync(got))).toBe(text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const { headers } = await arrived("/gzip");
    expect(headers.get("accept-encoding")).toBeNull();
  });

  test("gzip passes byte for byte to fetch with decompress: false; the client's Accept-Encoding is passed as sent", async () => {
    seen.length = 0;
    const response = await fetch(`${lb.url}/gzip`, { decompress: false, headers: { "accept-encoding": "gzip" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-encoding")).toBe("gzip");
    const got = new Uint8Array(await response.arrayBuffer());
    expect(got.byteLength).toBe(gzipped.byteLength);
    expect(sha256(got)).toBe(sha256(gzipped));
    expect((await arrived("/gzip")).headers.get("accept-encoding")).toBe("gzip");
  });

  test("a small JSON POST (10 KB, Content-Length) arrives intact with its headers", async () => {
    const json = JSON.stringify({ items: Array.from({ length: 250 }, (_, i) => ({ id: i, name: `item-${i}`, note: "ü€𝄞" })) });
    const bytes = new TextEncoder().encode(json);
    expect(bytes.byteLength).toBeGreaterThan(10_000);
    const response = await fetch(`${lb.url}/json`, {
      method: "POST",
      body: json,
      headers: { "content-type": "application/json; charset=utf-8" },
      decompress: false,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ bytes: bytes.byteLength, sha256: sha256(bytes) });
    const at = await arrived("/json");
    expect(at.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(at.headers.get("content-length")).toBe(String(bytes.byteLength));
    expect(new TextDecoder().decode(at.body!)).toBe(json);
  });

  for (const [name, chunkCount, chunkSize] of [
    ["small (3 × 1 KB)", 3, 1024],
    ["larger than lb's 64 KB replay buffer (40 × 8 KB)", 40, 8192],
  ] as const) {
    test(`a chunked POST without Content-Length, ${name}, arrives intact`, async () => {
      const path = `/chunked-${chunkCount}`;
      const fill = pseudoRandom(chunkCount);
      const chunks = Array.from({ length: chunkCount }, () => {
        const chunk = new Uint8Array(chunkSize);
        fill(chunk);
        return chunk;
      });
      const all = new Uint8Array(Bun.concatArrayBuffers(chunks));
      let index = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (index === chunks.length) return controller.close();
          await Promise.resolve();
          controller.enqueue(chunks[index++]!);
        },
      });
      const response = await fetch(`${lb.url}${path}`, { method: "POST", body, decompress: false });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ bytes: all.byteLength, sha256: sha256(all) });
      const at = await arrived(path);
      expect(at.body!.byteLength).toBe(all.byteLength);
      expect(sha256(at.body!)).toBe(sha256(all));
    });
  }

  test("a client that gives up while lb waits for the backend cancels the backend request", async () => {
    const client = new AbortController();
    const pending = fetch(`${lb.url}/hang?id=hang`, { signal: client.signal, decompress: false }).then(
      () => "answered",
      (error: Error) => error.name,
    );
    await waitFor(() => cancelled["hang"], "the backend to receive /hang");
    expect(cancelled["hang"]!.aborted).toBe(false);
    client.abort();
    expect(await pending).toBe("AbortError");
    await waitFor(() => cancelled["hang"]!.aborted, "the backend's request.signal to fire", 1000);
    const entry = await waitFor(() => lb.access.find((e) => e.path === "/hang?id=hang"), "the access log entry");
    expect(entry.status).toBe(499);
  });

  test("a client that goes away mid-body cancels the backend's response stream", async () => {
    const client = new AbortController();
    const response = await fetch(`${lb.url}/trickle?id=trickle`, { signal: client.signal, decompress: false });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("first chunk");
    expect(cancelled["trickle"]).toEqual({ aborted: false, streamCancelled: false });
    client.abort();
    // Promptly: without cancellation the upstream connection still dies, but only when the abandoned upstream
    // response is garbage-collected, a second or more later; with it, this takes a few ms.
    await waitFor(() => cancelled["trickle"]!.aborted || cancelled["trickle"]!.streamCancelled, "the backend to see the client go", 500);
    await waitFor(() => lb.access.find((e) => e.path === "/trickle?id=trickle"), "the access log entry");
  });
});

test("a short chunked answer that has arrived whole goes to the client whole, with a Content-Length", async () => {
  const body = "0123456789".repeat(30);
  const chunked = `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n64\r\n${body.slice(0, 100)}\r\nc8\r\n${body.slice(100)}\r\n0\r\n\r\n`;
  const backend = rawBackend("/health", chunked);
  const lb = await startTestLb([backend.url], { "health-path": "/health" });
  try {
    const answer = await rawRequest(lb.lb.port, "GET /short HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 500);
    const [head, received] = answer.split("\r\n\r\n");
    expect(head).toStartWith("HTTP/1.1 200 ");
    expect(head).toMatch(/^content-length: 300$/im);
    expect(head).not.toMatch(/^transfer-encoding:/im);
    expect(received).toBe(body);
  } finally {
    await lb.stop();
    await backend.stop();
  }
});

test("an answer the backend left without a Content-Type gets none from lb (sized or chunked)", async () => {
  const answers = {
    sized: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    chunked: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  };
  for (const [kind, answer] of Object.entries(answers)) {
    const backend = rawBackend("/health", answer);
    const lb = await startTestLb([backend.url], { "health-path": "/health" });
    try {
      const [head, received] = (await rawRequest(lb.lb.port, "GET /untyped HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 500)).split("\r\n\r\n");
      expect(`${kind}: ${head!.split("\r\n")[0]}`).toBe(`${kind}: HTTP/1.1 200 OK`);
      expect(head).not.toMatch(/^content-type:/im);
      expect(head).toMatch(/^content-length: 5$/im);
      expect(received).toBe("hello");
    } finally {
      await lb.stop();
      await backend.stop();
    }
  }
});
