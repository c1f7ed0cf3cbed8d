/**
 * The PROXY protocol between lb (as a process) and real peers: HAProxy in `mode tcp` with send-proxy and send-proxy-v2
 * in front of lb --accept-proxy (HTTP, and HTTPS with HTTP/2 through the header; HAProxy's own health checks as v2
 * LOCAL), and nginx behind lb with `listen ... proxy_protocol`, whose $proxy_protocol_addr proves what lb sent (v1 and
 * v2, plain and TLS, health checks included). Clients connect from other loopback addresses (127.0.0.2...), so the
 * address that arrives can only have come through the header.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Subprocess } from "bun";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LbProcess, deadPort, nginxConfig, runCommand, selfSignedCertificate, spawnLb, startBackend, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-proxy-protocol-"));
const { cert, key } = selfSignedCertificate(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
const who = startBackend("who", (request) => new Response(`for=${request.headers.get("x-forwarded-for")}`));
const peers: Subprocess[] = [];

/** Starts a peer in the foreground with its own config, and waits until `port` takes connections. */
async function startPeer(command: string[], port: number): Promise<void> {
  const proc = Bun.spawn(command, { stdout: "ignore", stderr: "ignore" });
  peers.push(proc);
  await waitFor(
    () => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((socket) => (socket.end(), true), () => false),
    `${command[0]} listening on ${port}`,
  );
}

afterAll(async () => {
  for (const proc of peers) proc.kill();
  await Promise.all(peers.map((proc) => proc.exited));
  await who.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** curl from `source` (a loopback address of its own); its status line, body and HTTP version. */
async function curlFrom(source: string, url: string, ...flags: string[]): Promise<string> {
  const { stdout, stderr, code } = await runCommand(["-s", "--interface", source, "-w", "\n%{http_code} %{http_version} %{local_port}", ...flags, url], ["curl"]);
  if (code !== 0) throw new Error(`curl ${url} exited ${code}: ${stderr}`);
  return stdout;
}

describe("HAProxy (mode tcp) in front of lb --accept-proxy", () => {
  let lb: LbProcess;
  let lbTls: LbProcess;
  const v1Port = deadPort();
  const v2Port = deadPort();
  const tlsPort = deadPort();
  const port = (url: string) => new URL(url).port;
  // lb's own copies of the certificate, which the reload test replaces.
  const liveCert = join(dir, "live.pem");
  const liveKey = join(dir, "live.key");

  beforeAll(async () => {
    lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--accept-proxy", "--access-log-format", "json", who.url]);
    writeFileSync(liveCert, readFileSync(cert));
    writeFileSync(liveKey, readFileSync(key));
    lbTls = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--accept-proxy", "--tls-cert", liveCert, "--tls-key", liveKey, who.url]);
    const config = join(dir, "haproxy.cfg");
    writeFileSync(
      config,
      [
        "global", "  maxconn 200",
        "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 10s", "  timeout server 10s",
        `frontend v1`, `  bind 127.0.0.1:${v1Port}`, "  default_backend lb_v1",
        "backend lb_v1", `  server lb 127.0.0.1:${port(lb.url)} send-proxy`,
        `frontend v2`, `  bind 127.0.0.1:${v2Port}`, "  default_backend lb_v2",
        // HAProxy's HTTP check over a send-proxy-v2 server opens with a LOCAL header.
        "backend lb_v2", "  option httpchk GET /", `  server lb 127.0.0.1:${port(lb.url)} send-proxy-v2 check inter 200ms`,
        `frontend tls`, `  bind 127.0.0.1:${tlsPort}`, "  default_backend lb_tls",
        "backend lb_tls", `  server lb 127.0.0.1:${port(lbTls.url)} send-proxy-v2`,
        "",
      ].join("\n"),
    );
    await startPeer(["haproxy", "-db", "-f", config], tlsPort);
  }, 20_000);

  afterAll(async () => {
    await lb.kill();
    await lbTls.kill();
  });

  test("send-proxy (v1): the backend and the access log see the client's address, not HAProxy's", async () => {
    const out = await curlFrom("127.0.0.2", `http://127.0.0.1:${v1Port}/`);
    expect(out).toStartWith("for=127.0.0.2\n200 1.1");
    const line = await lb.waitForLine("stdout", /"client":"127\.0\.0\.2"/);
    expect(JSON.parse(line).client).toBe("127.0.0.2");
  });

  test("send-proxy-v2: the same, and HAProxy's health checks (v2 LOCAL) are served and counted as local", async () => {
    expect(await curlFrom("127.0.0.3", `http://127.0.0.1:${v2Port}/`)).toStartWith("for=127.0.0.3\n200");
    const admin = / admin (http:\/\/\S+)/.exec(lb.stderr.join("\n"))?.[1];
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`${admin}/metrics`)).text();
      return /lb_proxy_protocol_connections_total\{outcome="local"\} [1-9]/.test(text) && text;
    }, "HAProxy's checks counted as local");
    expect(metrics).toMatch(/lb_proxy_protocol_connections_total\{outcome="accepted"\} [1-9]/);
    expect(metrics).not.toMatch(/outcome="(invalid|truncated|untrusted|timeout)"/);
  });

  test("HTTPS and HTTP/2 behind the header: TLS and ALPN are lb's as without --accept-proxy", async () => {
    const out = await curlFrom("127.0.0.4", `https://localhost:${tlsPort}/`, "--http2", "--cacert", cert, "--resolve", `localhost:${tlsPort}:127.0.0.1`);
    expect(out).toStartWith("for=127.0.0.4\n200 2");
  });

  test("a certificate reload (SIGHUP) moves the relay to a listener with the new certificate", async () => {
    const served = async () => (await runCommand(["-sv", "--haproxy-protocol", "--cacert", liveCert, `https://localhost:${port(lbTls.url)}/`, "--resolve", `localhost:${port(lbTls.url)}:127.0.0.1`], ["curl"])).stderr;
    expect(await served()).toContain("subject: CN=localhost");
    const next = selfSignedCertificate(dir, "renewed", "DNS:localhost");
    writeFileSync(liveCert, readFileSync(next.cert));
    writeFileSync(liveKey, readFileSync(next.key));
    lbTls.proc.kill("SIGHUP");
    await lbTls.waitForLine("stderr", /certificate .* re-read/);
    const after = await served();
    expect(after).toContain("subject: CN=renewed");
    expect(after).toContain("< HTTP/2 200");
  });

  test("a client that skips HAProxy (no header) is closed without an answer", async () => {
    const { code } = await runCommand(["-s", `${lb.url}/`], ["curl"]);
    expect(code).toBe(52); // curl: empty reply from server
  });
});

describe("lb send-proxy to nginx with listen ... proxy_protocol", () => {
  let lb: LbProcess;

  beforeAll(async () => {
    const [plain1, plain2, tls] = [deadPort(), deadPort(), deadPort()];
    const answer = 'return 200 "$proxy_protocol_addr:$proxy_protocol_port $request_uri\\n";';
    const config = join(dir, "nginx.conf");
    writeFileSync(
      config,
      nginxConfig(
        dir,
        `  server { listen 127.0.0.1:${plain1} proxy_protocol; location / { ${answer} } }
  server { listen 127.0.0.1:${plain2} proxy_protocol; location / { ${answer} } }
  server { listen 127.0.0.1:${tls} ssl proxy_protocol; ssl_certificate ${cert}; ssl_certificate_key ${key}; location / { ${answer} } }`,
      ),
    );
    await startPeer(["nginx", "-c", config, "-p", dir, "-e", `${dir}/nginx-error.log`], tls);
    const lbConfig = join(dir, "lb.toml");
    writeFileSync(
      lbConfig,
      `health-interval = "200ms"
backend-ca = "${cert}"
[pools.v1]
backends = ["http://127.0.0.1:${plain1}"]
send-proxy = "v1"
[pools.v2]
backends = ["http://127.0.0.1:${plain2}"]
send-proxy = "v2"
[pools.tls]
backends = ["https://localhost:${tls}"]
send-proxy = "v2"
[[routes]]
path-prefix = "/v1/"
pool = "v1"
[[routes]]
path-prefix = "/v2/"
pool = "v2"
[[routes]]
pool = "tls"
`,
    );
    lb = await spawnLb(["--config", lbConfig, "--port", "0", "--host", "127.0.0.1"]);
  }, 20_000);

  afterAll(() => lb.kill());

  test.each([["v1", "/v1/x"], ["v2", "/v2/x"], ["v2 before TLS", "/tls"]])("%s: nginx's $proxy_protocol_addr and port are the client's", async (_, path) => {
    const out = await curlFrom("127.0.0.5", `${lb.url}${path}`);
    const lines = out.split("\n");
    const [body, status] = [lines[0], lines.at(-1)!];
    const localPort = status.split(" ")[2];
    expect(body).toBe(`127.0.0.5:${localPort} ${path}`);
    expect(status).toStartWith("200 ");
  });

  test("health checks carry a header too: every pool is in rotation", async () => {
    const admin = / admin (http:\/\/\S+)/.exec(lb.stderr.join("\n"))?.[1];
    const backends = await waitFor(async () => {
      const { backends: list } = (await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ state: string }> };
      return list.length === 3 && list.every((b) => b.state === "healthy") && list;
    }, "every backend healthy");
    expect(backends).toHaveLength(3);
  });
});

describe("--accept-proxy with --workers 2", () => {
  test("each worker relays on the shared port (curl --haproxy-protocol), and the primary's /metrics sums their counts", async () => {
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--workers", "2", "--accept-proxy", "--no-access-log", who.url]);
    try {
      for (let i = 0; i < 8; i++) {
        expect(await curlFrom("127.0.0.6", `${lb.url}/`, "--haproxy-protocol")).toStartWith("for=127.0.0.6\n200");
      }
      const { code } = await runCommand(["-s", `${lb.url}/`], ["curl"]);
      expect(code).toBe(52);
      const admin = / admin (http:\/\/\S+)/.exec(lb.stderr.join("\n"))?.[1];
      await waitFor(async () => {
        const text = await (await fetch(`${admin}/metrics`)).text();
        return /outcome="accepted"\} 8\n/.test(text) && /outcome="invalid"\} 1\n/.test(text);
      }, "8 accepted and 1 invalid in the primary's /metrics");
    } finally {
      await lb.kill();
    }
  }, 20_000);
});
