/**
 * WebSocket tunnels to a pool with send-proxy, through real peers: nginx with `listen ... proxy_protocol` in front of a
 * Bun echo server, which reports the client address nginx took from lb's PROXY header ($proxy_protocol_addr and port)
 * and the Host it was sent. The client is python's websockets, on a socket bound to 127.0.0.7, so the address that
 * arrives can only have come through the header (lb's relay connects from 127.0.0.1).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LbProcess, deadPort, nginxConfig, runCommand, selfSignedCertificate, spawnLb, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-ws-send-proxy-"));
const { cert, key } = selfSignedCertificate(dir, "localhost", "DNS:localhost"); // not 127.0.0.1: the relay's address

/** Says who nginx saw (its X-Client header) and the Host first, then echoes every frame. */
const echo = Bun.serve<string>({
  port: 0,
  hostname: "127.0.0.1",
  fetch(request, server) {
    const hello = `client=${request.headers.get("x-client")} host=${request.headers.get("host")}`;
    if (request.headers.get("upgrade") !== "websocket") return new Response("ok"); // lb's health checks
    if (new URL(request.url).pathname.startsWith("/refused/")) return new Response("no", { status: 403 });
    return server.upgrade(request, { data: hello }) ? undefined : new Response("not a websocket", { status: 400 });
  },
  websocket: {
    open: (ws) => void ws.send(ws.data),
    message: (ws, message) => void ws.send(message),
  },
});

/** A python websockets client bound to `source`: the hello, a text and a binary echo, and its own port, as JSON. */
const CLIENT = `
import asyncio, json, socket, sys, websockets
async def main(source, host, port, path):
    sock = socket.create_connection((host, int(port)), source_address=(source, 0))
    local_port = sock.getsockname()[1]
    async with websockets.connect(f"ws://{host}:{port}{path}", sock=sock, compression=None) as ws:
        hello = await ws.recv()
        await ws.send("ping over the tunnel")
        text = await ws.recv()
        await ws.send(bytes([0, 1, 2, 255]))
        binary = await ws.recv()
    print(json.dumps({"port": local_port, "hello": hello, "text": text, "binary": list(binary)}))
asyncio.run(main(*sys.argv[1:]))
`;

interface Echoed {
  port: number;
  hello: string;
  text: string;
  binary: number[];
}

async function tunnelFrom(source: string, lbUrl: string, path: string): Promise<Echoed | string> {
  const { host, port } = new URL(lbUrl);
  const { stdout, stderr, code } = await runCommand([join(dir, "client.py"), source, host.split(":")[0]!, port, path], ["/usr/bin/python3"]);
  return code === 0 ? (JSON.parse(stdout) as Echoed) : stderr;
}

const peers: Subprocess[] = [];
let lb: LbProcess;
/** nginx's ports, all with proxy_protocol: one per pool, as a backend belongs to one pool. */
const nginxPorts = { v1: deadPort(), v2: deadPort(), refused: deadPort(), tls: deadPort() };
/** lb's listening sockets before any tunnel. */
let listening: string[] = [];

/** The TCP sockets (listening and connected) the lb process holds, from ss. */
async function socketsOf(pid: number): Promise<string[]> {
  const { stdout } = await runCommand(["-Htanp"], ["ss"]);
  return stdout.split("\n").filter((line) => line.includes(`pid=${pid},`));
}

/**
 * What a relay holds: a listener beyond lb's own, a connection to a backend (nginx), or a loopback connection whose
 * both ends are lb's (the WebSocket client and the relay's accepted socket).
 */
function relaySockets(lines: string[]): string[] {
  const ends = lines.map((line) => line.split(/\s+/).slice(3, 5) as [string, string]);
  const locals = new Set(ends.map(([local]) => local));
  const backends = Object.values(nginxPorts).map((port) => `127.0.0.1:${port}`);
  return lines.filter((line, i) => {
    const [local, peer] = ends[i]!;
    if (line.startsWith("LISTEN")) return !listening.includes(line);
    return backends.includes(peer) || locals.has(peer) || local === peer;
  });
}

beforeAll(async () => {
  writeFileSync(join(dir, "client.py"), CLIENT);
  const config = join(dir, "nginx.conf");
  writeFileSync(
    config,
    nginxConfig(
      dir,
      `  server {
    listen 127.0.0.1:${nginxPorts.v1} proxy_protocol;
    listen 127.0.0.1:${nginxPorts.v2} proxy_protocol;
    listen 127.0.0.1:${nginxPorts.refused} proxy_protocol;
    listen 127.0.0.1:${nginxPorts.tls} ssl proxy_protocol;
    ssl_certificate ${cert}; ssl_certificate_key ${key};
    location / {
      proxy_pass http://127.0.0.1:${echo.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $http_host;
      proxy_set_header X-Client $proxy_protocol_addr:$proxy_protocol_port;
    }
  }`,
    ),
  );
  const nginx = Bun.spawn(["nginx", "-c", config, "-p", dir, "-e", `${dir}/nginx-error.log`], { stdout: "ignore", stderr: "ignore" });
  peers.push(nginx);
  await waitFor(
    () => Bun.connect({ hostname: "127.0.0.1", port: nginxPorts.tls, socket: { data() {} } }).then((socket) => (socket.end(), true), () => false),
    `nginx listening on ${nginxPorts.tls}`,
  );
  const pools = {
    v1: { backend: `http://127.0.0.1:${nginxPorts.v1}`, sendProxy: "v1" },
    v2: { backend: `http://127.0.0.1:${nginxPorts.v2}`, sendProxy: "v2" },
    refused: { backend: `http://127.0.0.1:${nginxPorts.refused}`, sendProxy: "v2" },
    tls: { backend: `https://localhost:${nginxPorts.tls}`, sendProxy: "v2" },
    direct: { backend: `http://127.0.0.1:${echo.port}`, sendProxy: "" },
  };
  const lbConfig = join(dir, "lb.toml");
  writeFileSync(
    lbConfig,
    // Checks at start only, so the sockets lb holds later are the tunnels' alone.
    `health-interval = "60s"
backend-ca = "${cert}"
${Object.entries(pools).map(([name, pool]) => `[pools.${name}]\nbackends = ["${pool.backend}"]\n${pool.sendProxy ? `send-proxy = "${pool.sendProxy}"` : ""}`).join("\n")}
${Object.keys(pools).map((pool) => `[[routes]]\npath-prefix = "/${pool}/"\npool = "${pool}"`).join("\n")}
`,
  );
  // Bun's WebSocket client trusts the system's CAs and NODE_EXTRA_CA_CERTS (not --backend-ca, which the checks use).
  lb = await spawnLb(["--config", lbConfig, "--port", "0", "--host", "127.0.0.1", "--no-access-log"], undefined, { NODE_EXTRA_CA_CERTS: cert });
  const admin = / admin (http:\/\/\S+)/.exec(lb.stderr.join("\n"))?.[1];
  await waitFor(async () => {
    const { backends } = (await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ state: string }> };
    return backends.every((b) => b.state === "healthy");
  }, "every backend healthy");
  listening = (await socketsOf(lb.proc.pid)).filter((line) => line.startsWith("LISTEN"));
}, 20_000);

afterAll(async () => {
  await lb?.kill();
  for (const proc of peers) proc.kill();
  await Promise.all(peers.map((proc) => proc.exited));
  echo.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

describe("a WebSocket tunnel to a pool with send-proxy", () => {
  test.each(["v1", "v2"])("%s: the backend sees the client's address and port from the header, the client's Host, and frames echo both ways", async (version) => {
    const echoed = await tunnelFrom("127.0.0.7", lb.url, `/${version}/chat`);
    if (typeof echoed === "string") throw new Error(`the tunnel failed: ${echoed}`);
    expect(echoed.hello).toBe(`client=127.0.0.7:${echoed.port} host=${new URL(lb.url).host}`);
    expect(echoed.text).toBe("ping over the tunnel");
    expect(echoed.binary).toEqual([0, 1, 2, 255]);
  });

  test("the relay leaves nothing behind: no listener or socket once tunnels ended or a handshake failed", async () => {
    for (const path of ["/v1/a", "/v2/b"]) expect(typeof (await tunnelFrom("127.0.0.7", lb.url, path))).toBe("object");
    // The echo server refuses this handshake (403): the relay's connections must close all the same.
    expect(await tunnelFrom("127.0.0.7", lb.url, "/refused/x")).toContain("502");
    await lb.waitForLine("stderr", /refused the WebSocket handshake for \/refused\/x/);
    let held: string[] = [];
    await waitFor(async () => {
      held = await socketsOf(lb.proc.pid);
      return relaySockets(held).length === 0;
    }, () => `no relay socket left; lb holds:\n${held.join("\n")}`);
    expect(held.filter((line) => line.startsWith("LISTEN"))).toEqual(listening);
  });

  test("wss://: the header goes before TLS, and the backend's certificate is verified against its name, not the relay's", async () => {
    const echoed = await tunnelFrom("127.0.0.7", lb.url, "/tls/chat");
    if (typeof echoed === "string") throw new Error(`the tunnel failed: ${echoed}`);
    expect(echoed.hello).toBe(`client=127.0.0.7:${echoed.port} host=${new URL(lb.url).host}`);
    expect(echoed.text).toBe("ping over the tunnel");
  });
});

describe("a tunnel without send-proxy is unchanged", () => {
  test("to a plain backend it opens and echoes as before", async () => {
    const echoed = await tunnelFrom("127.0.0.7", lb.url, "/direct/chat");
    if (typeof echoed === "string") throw new Error(`the tunnel failed: ${echoed}`);
    expect(echoed.hello).toBe(`client=null host=${new URL(lb.url).host}`);
    expect(echoed.text).toBe("ping over the tunnel");
    expect(echoed.binary).toEqual([0, 1, 2, 255]);
  });
});
