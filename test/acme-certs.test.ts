/**
 * Certificate operations for files as for ACME: GET /api/certificates and `lb certs` list what lb serves, /metrics
 * has each name's expiry, and SIGHUP without --config re-reads --tls-cert/--tls-key, logging the new serial.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { describeCertificate } from "../src/certificates.ts";
import { runCommand, selfSignedCertificate, spawnLb, startBackend, waitFor } from "./helpers.ts";

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
