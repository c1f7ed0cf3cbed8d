/**
 * Benchmark backend: `bun bench/backend.ts <port> [delay-ms]`. Listens on 127.0.0.1 only, or on BACKEND_HOST (from the
 * environment; 0.0.0.0 answers on every loopback address, which bench/many-backends.sh counts as many backends).
 * With a delay, every answer waits that long first (a slow backend, for bench/slow-backend.sh).
 *   GET /     → "hello from <port> ....\n", padded with dots to 100 bytes (text/plain, Content-Length)
 *   GET /big  → 64 KiB of 'x' (application/octet-stream, Content-Length)
 *   GET /text → 64 KiB of JSON records (application/json, Content-Length), for bench/compression.sh
 *   GET /chunked → the 100-byte greeting as a stream, so it goes out chunked, without a Content-Length
 *   GET /304  → 304 Not Modified, no body (a cache revalidation), for bench/cross-talk.sh cost
 *   GET /stats → "REQUESTS MOST": the requests answered and the most at once since the last /stats (which is
 *                neither counted nor delayed), for bench/h2.sh's rapid-reset mode
 *   GET /health → "ok" after HEALTH_DELAY_MS (from the environment; 0 by default), neither counted nor delayed
 *                otherwise: a backend whose health check is slow, for bench/reload-swap.sh
 * The bodies are built once at startup, so the backend does as little work per request as Bun.serve allows.
 */
import { jsonText } from "./text-answer.ts";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write("usage: bun bench/backend.ts <port> [delay-ms]\n");
  process.exit(2);
}

const delayMs = Number(process.argv[3] ?? 0);
const healthDelayMs = Number(process.env.HEALTH_DELAY_MS ?? 0);
// About the size of a small API answer: "hello from <port> " then dots, 100 bytes with the newline.
const small = new TextEncoder().encode(`hello from ${port} `.padEnd(99, ".") + "\n");
const big = new Uint8Array(64 * 1024).fill(0x78);
const text = jsonText(64 * 1024);
const textHeaders = { "content-type": "application/json" };
const smallHeaders = { "content-type": "text/plain" };
const bigHeaders = { "content-type": "application/octet-stream" };
const notModifiedHeaders = { etag: '"bench"' };

let requests = 0;
let concurrent = 0;
let maxConcurrent = 0;

const server = Bun.serve({
  port,
  hostname: process.env.BACKEND_HOST ?? "127.0.0.1",
  development: false,
  reusePort: false,
  async fetch(request) {
    const path = request.url.slice(request.url.indexOf("/", 8));
    if (path === "/stats") {
      const stats = new Response(`${requests} ${maxConcurrent}`);
      requests = maxConcurrent = 0;
      return stats;
    }
    if (path === "/health") {
      if (healthDelayMs > 0) await Bun.sleep(healthDelayMs);
      return new Response("ok");
    }
    requests++;
    maxConcurrent = Math.max(maxConcurrent, ++concurrent);
    try {
      return await answer(path);
    } finally {
      concurrent--;
    }
  },
});

async function answer(path: string): Promise<Response> {
  if (delayMs > 0) await Bun.sleep(delayMs);
  if (path === "/big") return new Response(big, { headers: bigHeaders });
  if (path === "/text") return new Response(text, { headers: textHeaders });
  if (path === "/304") return new Response(null, { status: 304, headers: notModifiedHeaders });
  if (path === "/chunked") {
    // Bun.serve gives a stream that is complete after its first read a Content-Length; this one takes two.
    let sent = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (sent++ === 0) return controller.enqueue(small.subarray(0, 50));
        await new Promise((resolve) => setImmediate(resolve));
        controller.enqueue(small.subarray(50));
        controller.close();
      },
    });
    return new Response(body, { headers: smallHeaders });
  }
  return new Response(small, { headers: smallHeaders });
}

process.stderr.write(`backend listening on http://127.0.0.1:${server.port}\n`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void server.stop(true);
    process.exit(0);
  });
}
