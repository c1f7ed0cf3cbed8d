/**
 * Certificate operations for files as for ACME: GET /api/certificates and `lb certs` list what lb serves, /metrics
 * has each name's expiry, the dashboard shows it, and SIGHUP without --config re-reads --tls-cert/--tls-key, logging the
 * new serial.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { describeCertificate } from "../../src/front/certificates.ts";
import { chromium } from "playwright-core";
import { ROOT, runCommand, selfSignedCertificate, spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-certs-"));
const backend = startBackend("one");
afterAll(() => backend.stop());

/** The serial lb serves to a new connection asking for `name` (the certificate is self-signed: not verified). */
function servedSerial(port: number, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, servername: name, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on("error", reject);
  });
}

test("SIGHUP without --config re-reads the certificate files and logs the new serial; /api/certificates, lb certs and /metrics show it", async () => {
  const first = selfSignedCertificate(dir, "files.example.test");
  const [cert, key] = [join(dir, "served.pem"), join(dir, "served.key")];
  copyFileSync(first.cert, cert);
  copyFileSync(first.key, key);
  const lb = await spawnLb(["--host", "127.0.0.1", "--port", "0", "--tls-cert", cert, "--tls-key", key, "--log-format", "pretty", backend.url]);
  const port = Number(new URL(lb.url).port);
  const admin = /admin (http:\/\/\S+)/.exec(lb.stderr.find((line) => line.includes("lb listening on"))!)![1]!;
  const facts = describeCertificate(readFileSync(cert, "utf8"));
  expect(await servedSerial(port, "files.example.test")).toBe(facts.serial);

  const listed = (await (await fetch(`${admin}/api/certificates`)).json()) as { certificates: unknown[] };
  expect(listed.certificates).toEqual([
    {
      names: ["files.example.test"],
      source: "file",
      path: cert,
      issuer: "files.example.test",
      serial: facts.serial,
      notBefore: new Date(facts.notBefore).toISOString(),
      notAfter: new Date(facts.notAfter).toISOString(),
    },
  ]);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  expect(metrics).toContain(`lb_tls_certificate_expiry_timestamp_seconds{name="files.example.test"} ${facts.notAfter / 1000}\n`);
  const certs = await runCommand(["certs", "--admin", new URL(admin).host]);
  expect(certs.code).toBe(0);
  expect(certs.stdout).toMatch(new RegExp(`^files\\.example\\.test\\s+file ${cert.replaceAll(".", "\\.")}\\s+files\\.example\\.test\\s+${facts.serial}\\s+${new Date(facts.notAfter).toISOString()}`, "m"));

  // Renewed in place, as certbot does, then SIGHUP: no --config is needed for that.
  const renewed = selfSignedCertificate(dir, "files.example.test");
  copyFileSync(renewed.cert, cert);
  copyFileSync(renewed.key, key);
  const next = describeCertificate(readFileSync(cert, "utf8"));
  expect(next.serial).not.toBe(facts.serial);
  lb.proc.kill("SIGHUP");
  const line = await lb.waitForLine("stderr", /TLS certificate .* re-read/);
  expect(line).toContain(`TLS certificate ${cert} re-read: serial ${next.serial}, not after ${new Date(next.notAfter).toISOString().replace(".000Z", "Z")} (new)`);
  expect(lb.stderr.join("\n")).not.toContain("no --config file to reload");
  await waitFor(async () => (await servedSerial(port, "files.example.test").catch(() => null)) === next.serial, "the new certificate on new connections");
  const after = (await (await fetch(`${admin}/api/certificates`)).json()) as { certificates: Array<{ serial: string }> };
  expect(after.certificates[0]!.serial).toBe(next.serial);
  await lb.kill();
}, 30_000);

// Runs in the browser (the project's TypeScript has no DOM library).
declare const document: { querySelector(selector: string): { textContent: string; hidden: boolean } | null };

test("the dashboard lists each certificate with its expiry and source", async () => {
  if (!(await Bun.file("/usr/bin/chromium").exists())) throw new Error("/usr/bin/chromium is missing: apt-get install -y chromium (.ci/run does)");
  const { cert, key } = selfSignedCertificate(dir, "dashboard.example.test");
  const lb = await startTestLb([backend.url], { "tls-cert": cert, "tls-key": key });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(lb.lb.adminUrl!.origin);
    const row = '#certs li[data-certificate="dashboard.example.test"]';
    await page.waitForSelector(row);
    const text = await page.evaluate((selector) => document.querySelector(selector)!.textContent, row);
    // openssl made it for one day: 23 hours and some minutes are left.
    expect(text).toMatch(/^expires in 23h \d\dmfiledashboard\.example\.testby dashboard\.example\.test · until /);
    expect(await page.evaluate(() => document.querySelector("#certs-section")!.hidden)).toBe(false);
    await page.screenshot({ path: `${ROOT}test/artifacts/dashboard-certificates.png`, fullPage: true });
  } finally {
    await browser.close();
    await lb.stop();
  }
}, 30_000);
