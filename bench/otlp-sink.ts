/**
 * A stand-in OTLP/HTTP collector for bench/tracing.sh: `bun bench/otlp-sink.ts <port>`. A POST (protobuf or JSON) is
 * read whole and answered 200 as the OpenTelemetry Collector does; anything else gets 200 "ok" (a readiness probe).
 * What lb exported and dropped is counted by lb itself (/metrics).
 */
export {};

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write("usage: bun bench/otlp-sink.ts <port>\n");
  process.exit(2);
}
Bun.serve({
  port,
  hostname: "127.0.0.1",
  development: false,
  async fetch(request) {
    if (request.method !== "POST") return new Response("ok\n");
    await request.arrayBuffer();
    return request.headers.get("content-type") === "application/json" ? Response.json({}) : new Response(new Uint8Array(), { headers: { "content-type": "application/x-protobuf" } });
  },
});
