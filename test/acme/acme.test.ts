/**
 * --acme end to end: lb as a process (the source, and once the built binary) gets certificates from Pebble, a real
 * ACME CA, answering its HTTP-01 checks on the plain-HTTP port, and curl reaches a backend over HTTPS with them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { type Pebble, freePort, pebbleMissing, startPebble } from "./pebble.ts";
import { ROOT, type LbProcess, spawnLb, startBackend, waitFor, workerPids } from "../helpers.ts";

if (pebbleMissing) console.warn(`skipping the ACME tests: ${pebbleMissing}`);
const described = pebbleMissing ? describe.skip : describe;

const dir = mkdtempSync(join(tmpdir(), "lb-acme-"));

/** curl over HTTPS to `name` at lb's port, trusting Pebble's root only: its exit code, body and error text. */
async function curlHttps(pebble: Pebble, name: string, port: number, path = "/") {
  const proc = Bun.spawn(
    ["curl", "-sS", "--max-time", "5", "--cacert", pebble.rootFile, "--resolve", `${name}:${port}:127.0.0.1`, `https://${name}:${port}${path}`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [body, error, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, body, error };
}

/** The serial of the certificate lb serves for `name` (a new TLS connection each time). */
/**
 * The serial of the certificate served for `name`. The connection is dropped once the handshake has shown it: what
 * the socket reports after that (a reset as it closes) is not the answer.
 */
function servedSerial(pebble: Pebble, name: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let shown = false;
    const socket = connect({ host: "127.0.0.1", port, servername: name, ca: readFileSync(pebble.rootFile) }, () => {
      shown = true;
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on("error", (error) => {
      if (!shown) reject(error);
    });
  });
}

/**
 * The serial served for `name` once lb serves it: a new certificate moves new connections to a new listener on the
 * port, and one that lands on the listener being replaced gets no certificate for the name (with --workers, the
 * workers swap after the primary logs the certificate obtained).
 */
function servedSerialSoon(pebble: Pebble, name: string, port: number): Promise<string> {
  return waitFor(() => servedSerial(pebble, name, port).catch(() => null), `a certificate served for ${name}`);
}

interface AcmeLb {
  lb: LbProcess;
  port: number;
  httpPort: number;
}

/** lb with --acme for `names` against `pebble`, its state in `stateDir`. */
async function acmeLb(pebble: Pebble, httpPort: number, stateDir: string, names: string[], backend: string, extra: string[] = [], command?: string[]): Promise<AcmeLb> {
  const port = await freePort();
  const args = [
    ...["--host", "127.0.0.1", "--port", String(port), "--http-redirect-port", String(httpPort), "--log-format", "pretty"],
    ...names.flatMap((name) => ["--acme", name]),
    ...["--acme-ca", pebble.directory, "--acme-ca-cert", pebble.serverCaFile, "--acme-email", "ops@example.com", "--state-dir", stateDir],
    ...extra,
    backend,
  ];
  const lb = await spawnLb(args, command);
  running.push(lb);
  return { lb, port, httpPort };
}

/**
 * Every lb the tests start, stopped after each test however it ended: they all take Pebble's one HTTP-01 port, so an
 * lb left running by a failed test would fail every test after it.
 */
const running: LbProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((lb) => (lb.proc.exitCode === null ? lb.kill("SIGKILL") : lb.proc.exited)));
});

described("--acme with Pebble", () => {
  let pebble: Pebble;
  let httpPort: number;
  const backend = startBackend("one");
  beforeAll(async () => {
    httpPort = await freePort();
    pebble = await startPebble(dir, { httpPort });
  });
  afterAll(async () => {
    await pebble?.stop();
    await backend.stop();
  });

  test("the built binary gets a certificate for two names and serves HTTPS with them; the state files are 0600; a restart orders nothing", async () => {
    const binary = join(dir, "lb");
    const build = Bun.spawn(["bun", `${ROOT}build.ts`, "--out", binary], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
    expect(await build.exited).toBe(0);
    const stateDir = join(dir, "state-two-names");
    const before = pebble.orders();
    const first = await acmeLb(pebble, httpPort, stateDir, ["a.example.test", "b.example.test"], backend.url, [], [binary]);
    await first.lb.waitForLine("stderr", /certificate for a\.example\.test obtained/);
    await first.lb.waitForLine("stderr", /certificate for b\.example\.test obtained/);
    for (const name of ["a.example.test", "b.example.test"]) {
      const answer = await waitFor(async () => {
        const result = await curlHttps(pebble, name, first.port);
        return result.code === 0 ? result.body : null;
      }, `HTTPS for ${name}`);
      expect(answer).toBe("backend one");
    }
    expect(pebble.orders() - before).toBe(2);
    const files = listFiles(stateDir);
    expect(files.map((file) => file.slice(stateDir.length))).toEqual(expect.arrayContaining([expect.stringMatching(/account\.pem$/), expect.stringMatching(/a\.example\.test\.pem$/), expect.stringMatching(/b\.example\.test\.pem$/)]));
    for (const file of files) expect({ file, mode: (statSync(file).mode & 0o777).toString(8) }).toEqual({ file, mode: "600" });
    expect(files.filter((file) => file.endsWith(".tmp"))).toEqual([]);
    const serial = await servedSerialSoon(pebble, "a.example.test", first.port);
    expect(await first.lb.kill()).toBe(0);

    const again = await acmeLb(pebble, httpPort, stateDir, ["a.example.test", "b.example.test"], backend.url, [], [binary]);
    // Served at once, from the state directory: the first request after "listening" already succeeds.
    expect((await curlHttps(pebble, "b.example.test", again.port)).body).toBe("backend one");
    expect(await servedSerial(pebble, "a.example.test", again.port)).toBe(serial);
    expect(pebble.orders() - before).toBe(2);
    expect(again.lb.stderr.join("\n")).not.toContain("ordering");
    const admin = adminUrl(again.lb);
    const { certificates } = (await (await fetch(`${admin}/api/certificates`)).json()) as { certificates: Array<Record<string, unknown>> };
    expect(certificates.map((c) => c.names)).toEqual([["a.example.test"], ["b.example.test"]]);
    expect(certificates[0]).toMatchObject({ source: "acme", ca: pebble.directory, serial: expect.stringMatching(new RegExp(`^${serial}$`, "i")) });
    expect(certificates[0]!.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(Date.parse(certificates[0]!.renewal as string)).toBeLessThan(Date.parse(certificates[0]!.notAfter as string));
    const expiry = Date.parse(certificates[1]!.notAfter as string) / 1000;
    expect(await (await fetch(`${admin}/metrics`)).text()).toContain(`lb_tls_certificate_expiry_timestamp_seconds{name="b.example.test"} ${expiry}\n`);
    await again.lb.kill();
  }, 60_000);

  test("HTTPS for a name without a certificate fails the handshake, while plain HTTP answers challenges and redirects; a CA that is down gets a clear line naming the next try", async () => {
    const deadCa = `https://127.0.0.1:${await freePort()}/dir`;
    const port = await freePort();
    const redirectPort = await freePort();
    const { lb } = {
      lb: await spawnLb([
        ...["--host", "127.0.0.1", "--port", String(port), "--http-redirect-port", String(redirectPort), "--log-format", "pretty"],
        ...["--acme", "nocert.example.test", "--acme-ca", deadCa, "--state-dir", join(dir, "state-dead-ca"), backend.url],
      ]),
    };
    const line = await lb.waitForLine("stderr", /could not get a certificate/);
    expect(line).toContain(`acme: could not get a certificate for nocert.example.test from ${deadCa}: `);
    expect(line).toMatch(/ECONNREFUSED|Unable to connect|refused/i);
    expect(line).toMatch(/next try in 2m \(\d{4}-\d\d-\d\dT[\d:.]+Z\); until then HTTPS for nocert\.example\.test fails the handshake/);
    const https = await curlHttps(pebble, "nocert.example.test", port);
    expect(https.code).toBe(35); // curl: SSL connect error
    expect(https.error).toContain("alert internal error");
    const redirect = await fetch(`http://127.0.0.1:${redirectPort}/shop?x=1`, { redirect: "manual", headers: { host: "nocert.example.test" } });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get("location")).toBe(`https://nocert.example.test:${port}/shop?x=1`);
    const unknownChallenge = await fetch(`http://127.0.0.1:${redirectPort}/.well-known/acme-challenge/no-such-token`);
    expect(unknownChallenge.status).toBe(404);
    const { certificates } = (await (await fetch(`${adminUrl(lb)}/api/certificates`)).json()) as { certificates: unknown[] };
    expect(certificates).toEqual([
      { names: ["nocert.example.test"], source: "acme", ca: deadCa, pending: true, nextTry: expect.any(String), lastError: expect.stringContaining("cannot reach the ACME directory") },
    ]);
    expect(lb.proc.exitCode).toBeNull();
    await lb.kill();
  }, 30_000);

  test('acme = "routes": each exact route host gets a certificate, and a route host a reload adds gets one too', async () => {
    const port = await freePort();
    const config = join(dir, "routes.toml");
    const routesFile = (hosts: string[]) =>
      [
        `host = "127.0.0.1"`,
        `port = ${port}`,
        `http-redirect-port = ${httpPort}`,
        `acme = "routes"`,
        `acme-ca = "${pebble.directory}"`,
        `acme-ca-cert = "${pebble.serverCaFile}"`,
        `state-dir = "${join(dir, "state-routes")}"`,
        `[pools.web]`,
        `backends = ["${backend.url}"]`,
        ...hosts.map((host) => `[[routes]]\nhost = "${host}"\npool = "web"`),
        `[[routes]]\nhost = "*.wild.example.test"\npool = "web"`,
      ].join("\n");
    writeFileSync(config, routesFile(["one.routes.example.test"]));
    const lb = await spawnLb(["--config", config, "--log-format", "pretty"]);
    await lb.waitForLine("stderr", /certificate for one\.routes\.example\.test obtained/);
    writeFileSync(config, routesFile(["one.routes.example.test", "two.routes.example.test"]));
    await lb.waitForLine("stderr", /certificate for two\.routes\.example\.test obtained/);
    expect((await curlHttps(pebble, "two.routes.example.test", port)).body).toBe("backend one");
    expect(lb.stderr.join("\n")).not.toContain("wild.example.test");
    await lb.kill();
  }, 30_000);

  test("a damaged stored certificate is reported and ordered anew, never served", async () => {
    const stateDir = join(dir, "state-damaged");
    const first = await acmeLb(pebble, httpPort, stateDir, ["damaged.example.test"], backend.url);
    await first.lb.waitForLine("stderr", /certificate for damaged\.example\.test obtained/);
    const serial = await servedSerialSoon(pebble, "damaged.example.test", first.port);
    await first.lb.kill();
    const [stored] = listFiles(stateDir).filter((file) => file.endsWith("damaged.example.test.pem"));
    // One character of the leaf certificate's signature changed: it still parses, but its issuer did not sign it.
    const text = readFileSync(stored!, "utf8");
    const leafEnd = text.indexOf("-----END CERTIFICATE-----");
    const at = leafEnd - 10;
    writeFileSync(stored!, text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1));
    chmodSync(stored!, 0o600);

    const before = pebble.orders();
    const again = await acmeLb(pebble, httpPort, stateDir, ["damaged.example.test"], backend.url);
    expect(again.lb.stderr.join("\n")).toMatch(/the stored certificate for damaged\.example\.test \(.*damaged\.example\.test\.pem\) is not served: .*; ordering a new one/);
    await again.lb.waitForLine("stderr", /certificate for damaged\.example\.test obtained/);
    const fresh = await servedSerialSoon(pebble, "damaged.example.test", again.port);
    expect(fresh).not.toBe(serial);
    expect(pebble.orders() - before).toBe(1);
    await again.lb.kill();
  }, 30_000);

  test("a stored certificate deleted by the operator (as for a revoked one) is ordered anew on SIGHUP without --config (a new serial served) and at a restart; a SIGHUP with the file in place orders nothing", async () => {
    const name = "replaced.example.test";
    const stateDir = join(dir, "state-replaced");
    const { lb, port } = await acmeLb(pebble, httpPort, stateDir, [name], backend.url);
    await lb.waitForLine("stderr", /certificate for replaced\.example\.test obtained/);
    const [stored] = listFiles(stateDir).filter((file) => file.endsWith(`${name}.pem`));
    const first = await servedSerialSoon(pebble, name, port);
    const before = pebble.orders();
    const count = (pattern: RegExp) => lb.stderr.filter((line) => pattern.test(line)).length;
    const sighup = async () => {
      const reloads = count(/\(SIGHUP, no --config/);
      lb.proc.kill("SIGHUP");
      await waitFor(() => count(/\(SIGHUP, no --config/) > reloads, "the reload's line");
    };

    await sighup();
    expect(pebble.orders()).toBe(before);
    expect(count(/ordering a certificate/)).toBe(1);

    rmSync(stored!);
    await sighup();
    const line = lb.stderr.find((l) => l.includes("was deleted"))!;
    expect(line).toContain(`acme: the stored certificate for ${name} (${stored}) was deleted; ordering a new one now (until it is there, serial ${first}`);
    expect(line).toContain("stays in use)");
    // The old certificate is served until the new one reaches the listener (a probe may meet the old one as it closes).
    const second = await waitFor(async () => {
      const serial = await servedSerial(pebble, name, port).catch(() => null);
      return serial !== first && serial;
    }, "the new certificate on new connections");
    expect(pebble.orders() - before).toBe(1);
    expect(existsSync(stored!)).toBe(true);
    expect(await lb.kill()).toBe(0);

    rmSync(stored!);
    const again = await acmeLb(pebble, httpPort, stateDir, [name], backend.url);
    await again.lb.waitForLine("stderr", /ordering a certificate for replaced\.example\.test .*\(no certificate yet\)/);
    await again.lb.waitForLine("stderr", /certificate for replaced\.example\.test obtained/);
    const third = await servedSerialSoon(pebble, name, again.port);
    expect([first, second]).not.toContain(third);
    expect(pebble.orders() - before).toBe(2);
    await again.lb.kill();
  }, 30_000);

  test("--workers 2: the primary orders once; every new connection (the kernel spreads them over both workers) gets the certificate, also through a worker started after it came", async () => {
    const before = pebble.orders();
    const { lb, port } = await acmeLb(pebble, httpPort, join(dir, "state-workers"), ["workers.example.test"], backend.url, ["--workers", "2"]);
    await lb.waitForLine("stderr", /certificate for workers\.example\.test obtained/);
    const allServe = async () => {
      const answers = await Promise.all(Array.from({ length: 12 }, () => curlHttps(pebble, "workers.example.test", port)));
      return answers.every((answer) => answer.body === "backend one");
    };
    await waitFor(allServe, "HTTPS through both workers");
    const [killed] = workerPids(lb.proc.pid);
    process.kill(killed!, "SIGKILL");
    await lb.waitForLine("stderr", /worker \d restarted/);
    expect(workerPids(lb.proc.pid)).not.toContain(killed);
    expect(await allServe()).toBe(true);
    expect(pebble.orders() - before).toBe(1);
    await lb.kill();
  }, 30_000);
});

described("--acme renewal", () => {
  let pebble: Pebble;
  let httpPort: number;
  const backend = startBackend("renewed");
  beforeAll(async () => {
    httpPort = await freePort();
    // Certificates that live 24 s: renewal comes at about two thirds of that, 14.4-16 s after issue.
    const pebbleDir = join(dir, "short-lived");
    mkdirSync(pebbleDir);
    pebble = await startPebble(pebbleDir, { httpPort, validitySeconds: 24 });
  });
  afterAll(async () => {
    await pebble?.stop();
    await backend.stop();
  });

  test("a short-lived certificate is renewed and picked up under load (h2load, HTTP/1.1), no request failing", async () => {
    const { lb, port } = await acmeLb(pebble, httpPort, join(dir, "state-renewal"), ["renew.example.test"], backend.url, ["--no-access-log"]);
    await lb.waitForLine("stderr", /certificate for renew\.example\.test obtained/);
    const first = await servedSerialSoon(pebble, "renew.example.test", port);
    // 8 keep-alive clients for 20 s, asking for the name (SNI) as a browser would: the renewal comes 14-16 s in.
    const load = Bun.spawn(
      ["h2load", "--h1", "-c", "8", "-D", "20", "--connect-to", `127.0.0.1:${port}`, `https://renew.example.test:${port}/`],
      { stdout: "pipe", stderr: "pipe" },
    );
    await lb.waitForLine("stderr", /ordering a certificate for renew\.example\.test .*\(renewing/, 25_000);
    // The renewed certificate, verified against Pebble's root, on new connections while the load runs. (A probe's
    // handshake can meet the old listener as it closes: it looks again.)
    const second = await waitFor(async () => {
      const serial = await servedSerial(pebble, "renew.example.test", port).catch(() => null);
      return serial !== first && serial;
    }, "the renewed certificate on new connections");
    const [report, code] = await Promise.all([new Response(load.stdout).text(), load.exited]);
    expect(code).toBe(0);
    const [, total, succeeded, failed, errored] = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(report)!.map(Number);
    expect({ failed, errored, succeeded: succeeded === total }).toEqual({ failed: 0, errored: 0, succeeded: true });
    expect(total).toBeGreaterThan(1000);
    expect(second).not.toBe(first);
    expect(lb.stderr.filter((line) => /certificate for renew\.example\.test obtained/.test(line))).toHaveLength(2);
    await lb.kill();
  }, 60_000);
});

/** The admin API's address, from lb's "listening" line. */
function adminUrl(lb: LbProcess): string {
  return /admin (http:\/\/\S+)/.exec(lb.stderr.find((line) => line.includes("lb listening on"))!)![1]!;
}

function listFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}
