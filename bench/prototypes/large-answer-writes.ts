/**
 * PROTOTYPE FOR MEASUREMENT ONLY (not lb's code): how Bun.serve writes an answer over ~16 KiB that it gets from a
 * later event-loop turn, as a proxy does, for every way of handing Bun the body. Run it under strace with
 * bench/prototypes/large-answer-writes.sh, which counts the write system calls per answer.
 *
 *   bun bench/prototypes/large-answer-writes.ts PORT     then GET /<form>[?sync|?made]
 *
 * Forms: bytes (Uint8Array), buffer (Buffer), arraybuffer, blob, file (Bun.file on /dev/shm), subclass (a Response
 * subclass), noheaders (no Content-Type), cl (an explicit Content-Length), stream (a one-chunk ReadableStream with a
 * Content-Length), directstream (a "direct" ReadableStream). Default: answered from a timer (a later turn);
 * ?sync answers in the handler's own turn; ?made builds the Response at once and returns it from a later turn.
 * SIZE (bytes, default 65536) sets the body's size.
 */
import { writeFileSync } from "node:fs";

const size = Number(process.env.SIZE ?? 65536);
const bytes = new Uint8Array(size).fill(0x78);
const path = `/dev/shm/lb-large-answer-${process.pid}.bin`;
writeFileSync(path, bytes);
class Subclass extends Response {}
const headers = { "content-type": "application/octet-stream" };
const withLength = { ...headers, "content-length": String(size) };
const forms: Record<string, () => Response> = {
  bytes: () => new Response(bytes, { headers }),
  buffer: () => new Response(Buffer.from(bytes.buffer), { headers }),
  arraybuffer: () => new Response(bytes.buffer, { headers }),
  blob: () => new Response(new Blob([bytes]), { headers }),
  file: () => new Response(Bun.file(path), { headers }),
  subclass: () => new Subclass(bytes, { headers }),
  noheaders: () => new Response(bytes),
  cl: () => new Response(bytes, { headers: withLength }),
  stream: () =>
    new Response(new ReadableStream({ start: (c) => (c.enqueue(bytes), c.close()) }), { headers: withLength }),
  directstream: () =>
    new Response(new ReadableStream({ type: "direct", pull: (c: { write(b: Uint8Array): void; close(): void }) => (c.write(bytes), c.close()) } as never), { headers: withLength }),
};
const later = (make: () => Response) => new Promise<Response>((resolve) => setTimeout(() => resolve(make()), 0));

Bun.serve({
  port: Number(process.argv[2]),
  hostname: "127.0.0.1",
  development: false,
  fetch(request) {
    const url = new URL(request.url);
    const make = forms[url.pathname.slice(1)] ?? forms.bytes!;
    if (url.searchParams.has("sync")) return make();
    if (url.searchParams.has("made")) {
      const response = make();
      return later(() => response);
    }
    return later(make);
  },
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0));
