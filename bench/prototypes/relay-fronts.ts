/**
 * PROTOTYPES FOR MEASUREMENT ONLY (not lb's code): the cost of answering pipelined requests. Bun.serve cannot (it
 * closes a connection that pipelines behind an async handler); Bun's node:http can. Each front is the smallest
 * relay over fetch: round robin, no timeouts, retries, logging or streaming.
 *
 *   bun bench/prototypes/relay-fronts.ts serve-front  --port P <backend URLs>
 *   bun bench/prototypes/relay-fronts.ts node-front   --port P <backend URLs>
 *   bun bench/prototypes/relay-fronts.ts node-adapter --port P <backend URLs>
 *
 * serve-front:  Bun.serve → fetch, Web Request/Response throughout (what lb does today, minus lb's own work).
 * node-front:   node:http → fetch, no Request/Response objects: the floor for a node:http listener with forwarding
 *               rewritten around IncomingMessage/ServerResponse.
 * node-adapter: node:http → a Request → serve-front's handler → its Response written back: the cost of putting
 *               node:http in front of lb's Forwarder as it is (Request in, Response out).
 * bench/prototypes/compare.sh runs them side by side: PROXIES="serve-front node-front node-adapter lb".
 */
import http from "node:http";
import { Readable } from "node:stream";

const [mode, ...args] = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const backends = args.filter((arg) => arg.startsWith("http"));
if (!["serve-front", "node-front", "node-adapter"].includes(mode ?? "") || !port || backends.length === 0) {
  process.stderr.write("usage: bun bench/prototypes/relay-fronts.ts serve-front|node-front|node-adapter --port P <backend URLs>\n");
  process.exit(2);
}
let next = 0;
const pick = () => backends[next++ % backends.length]!;

async function relay(request: Request): Promise<Response> {
  const path = request.url.slice(request.url.indexOf("/", 8));
  const headers = new Headers(request.headers);
  headers.delete("connection");
  try {
    const upstream = await fetch(pick() + path, { method: request.method, headers, decompress: false, redirect: "manual" });
    const out = new Headers(upstream.headers);
    out.delete("connection");
    out.delete("keep-alive");
    return new Response(upstream.body, { status: upstream.status, headers: out });
  } catch {
    return new Response("bad gateway\n", { status: 502 });
  }
}

async function nodeRelay(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const headers: [string, string][] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  try {
    const upstream = await fetch(pick() + req.url, { method: req.method, headers, decompress: false, redirect: "manual" });
    const out: string[] = [];
    for (const [name, value] of upstream.headers) if (name !== "connection" && name !== "keep-alive") out.push(name, value);
    res.writeHead(upstream.status, out);
    res.end(await upstream.bytes());
  } catch {
    res.writeHead(502).end("bad gateway\n");
  }
}

async function adapter(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const headers: [string, string][] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
  const hasBody = req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
  const body = hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined;
  const response = await relay(new Request(`http://${req.headers.host ?? "x"}${req.url}`, { method: req.method, headers, body }));
  const out: string[] = [];
  response.headers.forEach((value, name) => out.push(name, value));
  res.writeHead(response.status, out);
  if (!response.body) return void res.end();
  for await (const chunk of response.body) res.write(chunk);
  res.end();
}

if (mode === "serve-front") Bun.serve({ port, hostname: "127.0.0.1", development: false, fetch: relay });
else http.createServer(mode === "node-front" ? nodeRelay : adapter).listen(port, "127.0.0.1");
