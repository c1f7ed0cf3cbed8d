/**
 * THE CEILING FOR LB (not lb's code): a bare Bun.serve handler that forwards through lb's own upstream client
 * (src/upstream/http-client.ts) with none of lb's logic. lb cannot cost less per request than this, so `bun run bench`
 * reports lb ÷ bare, and issue 28 aims at ≥ 0.9×.
 *
 *   bun bench/prototypes/bare-upstream.ts --port P <backend URLs>          # HTTP/1.1
 *   bun bench/prototypes/bare-upstream.ts --http2 --port P <backend URLs>  # also h2c (HTTP/2 by prior knowledge)
 *
 * What it keeps, because lb must do it too: round robin; a backend connection per client connection (the client's
 * address and port as the key, as lb's cross-talk defence needs); the client's fields minus hop-by-hop ones sent on;
 * the backend's status, fields and body handed back (whole when they have all arrived, else streamed), as lb does.
 * What it leaves out: health, retries, timeouts beyond the client's defaults, X-Forwarded-*, request ids, logging,
 * metrics, routes, hooks, request bodies (sent whole when small, else streamed, with no idle watch), the rapid-reset
 * turn lb waits over HTTP/2.
 */
import { HOP_BY_HOP } from "../../src/http/hop-by-hop.ts";
import { HttpClient } from "../../src/upstream/http-client.ts";
import { isFailure } from "../../src/upstream/client.ts";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const http2 = args.includes("--http2");
const backends = args.filter((arg) => arg.startsWith("http://"));
if (!port || backends.length === 0) {
  process.stderr.write("usage: bun bench/prototypes/bare-upstream.ts [--http2] --port P <backend URLs>\n");
  process.exit(2);
}

const client = new HttpClient({
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  readTimeoutMs: 60_000,
  clientIdleMs: 10_000,
  tls: undefined,
});
let next = 0;

Bun.serve({
  port,
  hostname: "127.0.0.1",
  http2,
  development: false,
  async fetch(request, server) {
    const fields: [string, string][] = [];
    for (const pair of request.headers) if (!HOP_BY_HOP.has(pair[0])) fields.push(pair);
    const url = request.url;
    const peer = server.requestIP(request);
    const result = await client.send(backends[next++ % backends.length]!, {
      method: request.method,
      target: url.slice(url.indexOf("/", url.indexOf("://") + 3)),
      headers: fields,
      body: request.body ? await request.bytes() : null,
      client: peer ? `${peer.address}:${peer.port}` : null,
      timeoutMs: 30_000,
    }).result;
    if (isFailure(result)) return new Response(`502 ${result.reason}\n`, { status: 502 });
    return new Response(result.body, { status: result.status, statusText: result.statusText, headers: result.headers });
  },
});

// An exit on SIGINT and SIGTERM, so `bun --cpu-prof` writes its profile.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0));
