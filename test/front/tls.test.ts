/** TLS termination (with a certificate made by openssl here), the HTTP→HTTPS redirect, and https:// backends. */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  deadPort, fetchH3, runCommand, selfSignedCertificate, spawnLb, startBackend, tcpListenersOn, udpSocketsOn, waitFor,
} from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-tls-"));

const makeCertificate = (name: string, altNames?: string) => selfSignedCertificate(dir, name, altNames);
/** Certificate and key files of a test's own, which it rewrites as certbot does; they start as `pair`. */
function liveFiles(name: string, pair: { cert: string; key: string }) {
  const files = { cert: join(dir, `${name}-cert.pem`), key: join(dir, `${name}-key.pem`) };
  const install = (next: { cert: string; key: string }) => {
    copyFileSync(next.cert, files.cert);
    copyFileSync(next.key, files.key);
  };
  install(pair);
  return { ...files, install };
}

/** The subject of the certificate lb presents to a client asking for `serverName`. */
async function subjectOf(port: string, serverName: string): Promise<string> {
  const probe = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", serverName], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  const pem = await new Response(probe.stdout).text();
  const parse = Bun.spawn(["openssl", "x509", "-noout", "-subject"], { stdin: new TextEncoder().encode(pem), stdout: "pipe" });
  return (await new Response(parse.stdout).text()).trim();
}

const { cert, key } = makeCertificate("localhost", "DNS:localhost,IP:127.0.0.1");
const ca = readFileSync(cert, "utf8");
const plain = startBackend("plain");
const secure = Bun.serve({ port: 0, hostname: "127.0.0.1", tls: { cert: Bun.file(cert), key: Bun.file(key) }, fetch: () => new Response("secure backend") });
afterAll(async () => {
  await plain.stop();
  await secure.stop(true);
  rmSync(dir, { recursive: true, force: true });
});
const baseArgs = ["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s"];

describe("TLS termination", () => {
  test("HTTPS to clients, X-Forwarded-Proto https to the backend, and a redirect from plain HTTP", async () => {
    const redirectPort = deadPort();
    const lb = await spawnLb([...baseArgs, "--tls-cert", cert, "--tls-key", key, "--http-redirect-port", String(redirectPort), plain.url]);
    try {
      expect(lb.url).toStartWith("https://");
      const response = await fetch(`${lb.url}/secure?x=1`, { tls: { ca } });
      expect(await response.text()).toBe("backend plain");
      expect(plain.seen.at(-1)!.headers.get("x-forwarded-proto")).toBe("https");
      // Async: the backend lives in this process, so a synchronous spawn would block its answer.
      const curl = Bun.spawn(["curl", "-s", "--cacert", cert, `${lb.url}/curl`], { stdout: "pipe" });
      expect(await new Response(curl.stdout).text()).toBe("backend plain");
      const redirect = await fetch(`http://127.0.0.1:${redirectPort}/a/b?c=d`, { redirect: "manual" });
      expect(redirect.status).toBe(308);
      expect(redirect.headers.get("location")).toBe(`https://127.0.0.1:${new URL(lb.url).port}/a/b?c=d`);
    } finally {
      expect(await lb.kill()).toBe(0);
    }
  });

  test("SNI: each server name gets its own certificate, others the default", async () => {
    const { cert: otherCert, key: otherKey } = makeCertificate("other.test");
    const lb = await spawnLb([...baseArgs, "--tls-cert", cert, "--tls-key", key, "--tls-sni", `other.test=${otherCert},${otherKey}`, plain.url]);
    try {
      expect(await subjectOf(new URL(lb.url).port, "other.test")).toBe("subject=CN = other.test");
      expect(await subjectOf(new URL(lb.url).port, "localhost")).toBe("subject=CN = localhost");
    } finally {
      await lb.kill();
    }
  });

  test("SIGHUP picks up renewed certificate files; a request in flight finishes; the port stays exclusive; HTTP/3 follows", async () => {
    const { cert: liveCert, key: liveKey, install } = liveFiles("live", { cert, key });
    const gate = Promise.withResolvers<void>();
    const slow = startBackend("slow", async (request) => {
      if (new URL(request.url).pathname === "/hold") await gate.promise;
      return new Response("slow done");
    });
    const config = join(dir, "tls.toml");
    writeFileSync(config, `tls-cert = "${liveCert}"\ntls-key = "${liveKey}"\nhttp3 = true\nbackends = ["${slow.url}"]\n`);
    const overHttp3 = async () => (await fetchH3(`${lb.url}/h3`)).text();
    const lb = await spawnLb([...baseArgs, "--config", config]);
    const port = new URL(lb.url).port;
    try {
      expect(await subjectOf(port, "localhost")).toBe("subject=CN = localhost");
      expect(await overHttp3()).toBe("slow done");
      const held = fetch(`${lb.url}/hold`, { tls: { ca } });
      await waitFor(() => slow.seen.some((r) => r.path === "/hold"), "the held request");
      const renewed = makeCertificate("renewed.test");
      install(renewed);
      lb.proc.kill("SIGHUP");
      await lb.waitForLine("stderr", /config reloaded.*\(SIGHUP\)/);
      expect(await subjectOf(port, "renewed.test")).toBe("subject=CN = renewed.test");
      // The old listener stops taking connections at once, its UDP socket too: HTTP/3 is the new listener's.
      expect(await udpSocketsOn(Number(port))).toBe(1);
      expect(await overHttp3()).toBe("slow done");
      gate.resolve();
      expect(await (await held).text()).toBe("slow done");
      // Still exclusive: a second lb on the same port is refused, not silently sharing it.
      const second = await runCommand([...baseArgs.slice(2), "--port", port, "--host", "127.0.0.1", "--tls-cert", cert, "--tls-key", key, plain.url]);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`port ${port} is already in use`);
    } finally {
      gate.resolve();
      await lb.kill();
      await slow.stop();
    }
  }, 20_000); // starts lb and waits on its events: seconds on a busy machine

  test("a reload opens a new listener only for new certificates, warning once unless Linux moves queues", async () => {
    const migrates = readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim() !== "0";
    const { cert: liveCert, key: liveKey, install } = liveFiles("swap", { cert, key });
    const lb = await spawnLb([...baseArgs, "--tls-cert", liveCert, "--tls-key", liveKey, plain.url]);
    const port = Number(new URL(lb.url).port);
    const reload = async (count: number) => {
      lb.proc.kill("SIGHUP");
      const reread = () => lb.stderr.filter((line) => line.includes(`TLS certificate ${liveCert} re-read`)).length;
      await waitFor(() => reread() === count, `reload ${count}`);
    };
    const hints = () => lb.stderr.filter((line) => line.includes("sysctl net.ipv4.tcp_migrate_req=1")).length;
    try {
      const first = await tcpListenersOn(port);
      expect(first).toHaveLength(1);
      await reload(1);
      expect(await tcpListenersOn(port)).toEqual(first);
      expect(hints()).toBe(0);
      install(makeCertificate("moved.test"));
      await reload(2);
      await waitFor(async () => !(await tcpListenersOn(port)).includes(first[0]!), "the old listener closed");
      expect(await tcpListenersOn(port)).toHaveLength(1);
      expect(await subjectOf(String(port), "moved.test")).toBe("subject=CN = moved.test");
      install({ cert, key });
      await reload(3);
      expect(await subjectOf(String(port), "localhost")).toBe("subject=CN = localhost");
      expect(hints()).toBe(migrates ? 0 : 1);
      expect(await (await fetch(`${lb.url}/`, { tls: { ca } })).text()).toBe("backend plain");
    } finally {
      await lb.kill();
    }
  });

  test("a reload with a key not matching its certificate is refused, again at the next one, until fixed", async () => {
    const { cert: liveCert, key: liveKey } = liveFiles("mismatch", { cert, key });
    const lb = await spawnLb([...baseArgs, "--tls-cert", liveCert, "--tls-key", liveKey, plain.url]);
    const port = new URL(lb.url).port;
    const reason = `tls-cert: the private key is not the certificate's (${liveCert}`;
    const refused = (line: string) => line.includes("config reload rejected") && line.includes(reason);
    const refusals = () => lb.stderr.filter(refused).length;
    try {
      const next = makeCertificate("next.test");
      copyFileSync(next.cert, liveCert); // certbot writes the certificate, then the key
      for (const count of [1, 2]) {
        lb.proc.kill("SIGHUP");
        await waitFor(() => refusals() === count, `refusal ${count}`);
        expect(await subjectOf(port, "localhost")).toBe("subject=CN = localhost");
      }
      copyFileSync(next.key, liveKey);
      lb.proc.kill("SIGHUP");
      const served = async () => (await subjectOf(port, "next.test")) === "subject=CN = next.test";
      await waitFor(served, "the new certificate served");
      expect(refusals()).toBe(2);
    } finally {
      await lb.kill();
    }
  });

  test("a certificate without its key, an unreadable one, or another's key, is refused at startup", async () => {
    const half = await runCommand([...baseArgs, "--tls-cert", cert, plain.url]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain("give both --tls-cert and --tls-key");
    const missing = await runCommand([...baseArgs, "--tls-cert", join(dir, "nope.pem"), "--tls-key", key, plain.url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`lb: tls-cert: cannot read ${join(dir, "nope.pem")} (ENOENT); check the path`);
    const other = makeCertificate("other-key.test");
    const mismatched = await runCommand([...baseArgs, "--tls-cert", cert, "--tls-key", other.key, plain.url]);
    expect(mismatched.code).toBe(2);
    const notItsKey = "the private key is not the certificate's";
    expect(mismatched.stderr.trim()).toBe(`lb: tls-cert: ${notItsKey} (${cert}, key ${other.key})`);
    const sni = ["--tls-sni", `other.test=${other.cert},${key}`];
    const mismatchedSni = await runCommand([...baseArgs, "--tls-cert", cert, "--tls-key", key, ...sni, plain.url]);
    expect(mismatchedSni.code).toBe(2);
    expect(mismatchedSni.stderr.trim()).toBe(`lb: tls-sni other.test: ${notItsKey} (${other.cert}, key ${key})`);
    const garbage = join(dir, "garbage.pem");
    writeFileSync(garbage, "not a certificate\n");
    const unparsed = await runCommand([...baseArgs, "--tls-cert", garbage, "--tls-key", key, plain.url]);
    expect(unparsed.code).toBe(2);
    expect(unparsed.stderr.trim()).toBe(`lb: tls-cert: the certificate does not parse (${garbage}, key ${key})`);
  });
});

describe("https:// backends", () => {
  const backendUrl = `https://127.0.0.1:${secure.port}`;

  test("verified against --backend-ca", async () => {
    const lb = await spawnLb([...baseArgs, "--backend-ca", cert, backendUrl]);
    try {
      expect(await (await fetch(`${lb.url}/`)).text()).toBe("secure backend");
    } finally {
      await lb.kill();
    }
  });

  test("a self-signed backend fails verification by default, and works with --backend-insecure (with a warning)", async () => {
    const strict = await spawnLb([...baseArgs, backendUrl]);
    try {
      expect(strict.stderr.join("\n")).toContain("SELF_SIGNED");
      expect((await fetch(`${strict.url}/`)).status).toBe(503);
    } finally {
      await strict.kill();
    }
    const insecure = await spawnLb([...baseArgs, "--backend-insecure", backendUrl]);
    try {
      expect(insecure.stderr.join("\n")).toContain("certificates are NOT verified");
      expect(await (await fetch(`${insecure.url}/`)).text()).toBe("secure backend");
    } finally {
      await insecure.kill();
    }
  });
});
