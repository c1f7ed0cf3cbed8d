/**
 * Re-checks, on the Bun at hand, the facts that keep lb's listener on Bun.serve without HTTP/1.1 pipelining
 * (bench/results/2026-11-25-pipelining.md). Run it after a Bun upgrade:
 *
 *   bun bench/prototypes/pipelining-probe.ts
 *
 * Each line says what was tried and what happened; "blocks" marks a fact that rules the alternative out today.
 *   1. Bun.serve, async handler, 3 pipelined GETs: answered in order? (the fix lb needs; Bun PRs #38128, #43273)
 *   2. node:http, the same: answered in order? (the alternative listener)
 *   3. node:http listen({ reusePort }) twice on one port: lb --workers needs it.
 *   4. node:https with SNICallback: a second certificate by server name; lb --tls-sni needs it.
 *   5. node:https server.setSecureContext: lb's certificate reload without dropping connections needs it (or 3).
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { selfSignedCertificate } from "../../test/helpers.ts";

const PATHS = ["/p1", "/p2", "/p3"];

/** Sends three pipelined GETs in one write; resolves to the paths echoed back, in the order they arrived. */
function pipelined(port: number): Promise<string[]> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    const done = () => {
      socket.destroy();
      resolve([...received.matchAll(/echo:(\/p\d)/g)].map((match) => match[1]!));
    };
    socket.on("data", (chunk) => {
      received += chunk;
      if (received.split("echo:").length > PATHS.length) done();
    });
    socket.on("error", done);
    socket.on("close", done);
    socket.setTimeout(2000, done);
    socket.write(PATHS.map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(""));
  });
}

const report = (label: string, ok: boolean, detail: string, blocks = false) =>
  console.log(`${ok ? "yes" : blocks ? "NO (blocks)" : "no"}  ${label}: ${detail}`);
const inOrder = (paths: string[]) => paths.join(",") === PATHS.join(",");

const serve = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  development: false,
  async fetch(request) {
    await Bun.sleep(10);
    return new Response(`echo:${new URL(request.url).pathname}`);
  },
});
const servePaths = await pipelined(serve.port!);
report("1. Bun.serve answers pipelined requests (async handler)", inOrder(servePaths), `got [${servePaths}]`, true);
void serve.stop(true);

const echo = async (req: http.IncomingMessage, res: http.ServerResponse) => {
  await Bun.sleep(10);
  res.end(`echo:${req.url}`);
};
const listening = (server: net.Server, options: net.ListenOptions) =>
  new Promise<string | null>((resolve) => {
    server.once("error", (error) => resolve(String(error)));
    server.listen(options, () => resolve(null));
  });

const first = http.createServer(echo);
await listening(first, { port: 0, host: "127.0.0.1", reusePort: true } as net.ListenOptions);
const port = (first.address() as net.AddressInfo).port;
const nodePaths = await pipelined(port);
report("2. node:http answers pipelined requests", inOrder(nodePaths), `got [${nodePaths}]`);
const second = http.createServer(echo);
const shared = await listening(second, { port, host: "127.0.0.1", reusePort: true } as net.ListenOptions);
report("3. node:http shares a port (reusePort)", shared === null, shared ?? "two listeners on one port", true);
first.close();
second.close();

const dir = mkdtempSync(`${tmpdir()}/lb-probe-`);
const main = selfSignedCertificate(dir, "main.test");
const other = selfSignedCertificate(dir, "other.test");
const otherContext = tls.createSecureContext({ cert: readFileSync(other.cert), key: readFileSync(other.key) });
const secure = https.createServer(
  {
    cert: readFileSync(main.cert),
    key: readFileSync(main.key),
    SNICallback: (name, callback) => callback(null, name === "other.test" ? otherContext : undefined),
  },
  echo,
);
await listening(secure, { port: 0, host: "127.0.0.1" });
const subject = await new Promise<string>((resolve) => {
  const socket = tls.connect({ port: (secure.address() as net.AddressInfo).port, host: "127.0.0.1", servername: "other.test", rejectUnauthorized: false }, () => {
    resolve(String(socket.getPeerCertificate().subject?.CN ?? "?"));
    socket.destroy();
  });
  socket.on("error", (error) => resolve(`error ${error.message}`));
});
report("4. node:https picks a certificate by SNI", subject === "other.test", `asked for other.test, got ${subject}`, true);
const canSwap = typeof (secure as unknown as { setSecureContext?: unknown }).setSecureContext === "function";
report("5. node:https swaps certificates in place (setSecureContext)", canSwap, canSwap ? "present" : "missing", true);
secure.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
