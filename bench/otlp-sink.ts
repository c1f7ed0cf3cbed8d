/**
 * A stand-in OTLP/HTTP collector for bench/tracing.sh: `bun bench/otlp-sink.ts <port>`. POST /v1/traces is read whole
 * and answered 200 with `{}` (as the OpenTelemetry Collector does); GET /stats says "SPANS POSTS" received so far,
 * counted from the JSON bodies' "spanId" keys.
 */
export {};

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write("usage: bun bench/otlp-sink.ts <port>\n");
  process.exit(2);
}
let spans = 0;
let posts = 0;
Bun.serve({
  port,
  hostname: "127.0.0.1",
  development: false,
  async fetch(request) {
    if (request.method === "GET") return new Response(`${spans} ${posts}\n`);
    const body = await request.text();
    posts++;
    spans += body.split('"spanId"').length - 1;
    return Response.json({});
  },
});
