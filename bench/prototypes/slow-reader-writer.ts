/**
 * What Bun's own response writer holds for a slow client, with no backend at all, for bench/slow-readers.sh
 * (LB="bun bench/prototypes/slow-reader-writer.ts"; lb's flags are ignored but --port): every GET other than / gets a
 * 4 MiB body from a ReadableStream (highWaterMark 0, as lb's) that enqueues one fresh PIECE-byte buffer per pull.
 *
 *   PIECE=n   bytes per enqueued piece (65536 by default)
 *   PER_PULL=n pieces enqueued per pull (1 by default): several pieces of one backend read enqueued at once
 *   NOLEN=1   no Content-Length: Bun sends the body chunked (as lb does for a chunked backend answer)
 * On SIGUSR1 it prints process.memoryUsage() to stderr.
 */
export {};

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const SIZE = 4 * 1024 * 1024;
const PIECE = Number(process.env.PIECE ?? 65536);
const PER_PULL = Number(process.env.PER_PULL ?? 1);
const mib = (n: number) => `${Math.round(n / 1048576)} MiB`;
process.on("SIGUSR1", () => {
  const m = process.memoryUsage();
  process.stderr.write(`rss ${mib(m.rss)}, heap ${mib(m.heapUsed)}, external ${mib(m.external)}, arrayBuffers ${mib(m.arrayBuffers)}\n`);
});

function body(): ReadableStream<Uint8Array> {
  let left = SIZE;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        for (let i = 0; i < PER_PULL && left > 0; i++) {
          const n = Math.min(PIECE, left);
          left -= n;
          controller.enqueue(Buffer.alloc(n, "x"));
        }
        if (left === 0) controller.close();
      },
    },
    { highWaterMark: 0 },
  );
}

Bun.serve({
  port,
  hostname: "127.0.0.1",
  development: false,
  idleTimeout: 0,
  fetch(request) {
    if (new URL(request.url).pathname === "/") return new Response("ok\n");
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (!process.env.NOLEN) headers["content-length"] = String(SIZE);
    return new Response(body(), { headers });
  },
});
process.stderr.write(`writer prototype on ${port}\n`);
