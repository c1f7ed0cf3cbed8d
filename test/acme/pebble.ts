/**
 * Pebble, Let's Encrypt's ACME test server (Debian's `pebble` package), for the --acme tests: a CA on free loopback
 * ports that checks HTTP-01 challenges on lb's plain-HTTP port, with pebble-challtestsrv as its DNS server answering
 * every name with 127.0.0.1. Nothing is faked: lb talks RFC 8555 to it over HTTPS.
 */
import type { Subprocess } from "bun";
import { existsSync, writeFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { collectLines, selfSignedCertificate, waitFor } from "../helpers.ts";

export const PEBBLE = "/usr/bin/pebble";
/** Why the ACME tests are skipped, or null when Pebble is installed (.ci/run installs it). */
export const pebbleMissing = existsSync(PEBBLE) ? null : `${PEBBLE} is missing: apt-get install pebble (.ci/run does) to run the ACME tests`;

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** The PEM file lb must trust for Pebble's own HTTPS (--acme-ca-cert). */
  serverCaFile: string;
  /** Pebble's root CA (what its certificates chain to), for curl --cacert. */
  rootFile: string;
  /** Pebble's log lines. */
  log(): string[];
  /** Orders placed so far (from Pebble's log). */
  orders(): number;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** Where Pebble sends HTTP-01 checks: lb's --http-redirect-port. */
  httpPort: number;
  /** Certificates' lifetime in seconds (Pebble's default is 5 years). */
  validitySeconds?: number;
  /** The port of the ACME API; a free one unless given (a test restarting the CA keeps its address). */
  port?: number;
  /** Require External Account Binding, with this key ID and HMAC key (base64url). */
  eab?: { kid: string; hmac: string };
}

/** Starts Pebble and its DNS server in `dir`, resolving once the directory answers. */
export async function startPebble(dir: string, options: PebbleOptions): Promise<Pebble> {
  const { cert, key } = pebbleServerCertificate(dir);
  const [port, management, dns, dnsManagement] = [options.port ?? (await freePort()), await freePort(), await freePort(), await freePort()];
  const config = join(dir, `pebble-${port}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: cert,
        privateKey: key,
        httpPort: options.httpPort,
        tlsPort: await freePort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: Boolean(options.eab),
        ...(options.eab && { externalAccountMACKeys: { [options.eab.kid]: options.eab.hmac } }),
        ...(options.validitySeconds && { certificateValidityPeriod: options.validitySeconds }),
      },
    }),
  );
  const dnsServer = Bun.spawn(
    ["pebble-challtestsrv", "-dns01", `127.0.0.1:${dns}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${dnsManagement}`, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
    { stdout: "ignore", stderr: "ignore" },
  );
  const pebble: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([PEBBLE, "-config", config, "-dnsserver", `127.0.0.1:${dns}`], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" },
  });
  const [out, err] = [collectLines(pebble.stdout), collectLines(pebble.stderr)];
  const directory = `https://127.0.0.1:${port}/dir`;
  const rootFile = join(dir, `pebble-root-${port}.pem`);
  const stop = async () => {
    pebble.kill();
    dnsServer.kill();
    await Promise.all([pebble.exited, dnsServer.exited]);
  };
  try {
    // Pebble checks a challenge by resolving the name first: a DNS server not yet listening fails the order.
    await waitFor(() => resolvesToLoopback(dns), `pebble-challtestsrv's DNS answers on 127.0.0.1:${dns}`, 10_000);
    const root = await waitFor(() => fetchText(`https://127.0.0.1:${management}/roots/0`, cert), `Pebble's root on its management port`, 10_000);
    writeFileSync(rootFile, root);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; Pebble said:\n${[...out, ...err].join("\n")}`);
  }
  return {
    directory,
    serverCaFile: cert,
    rootFile,
    log: () => [...out, ...err],
    orders: () => [...out, ...err].filter((line) => /POST \/order-plz/.test(line)).length,
    stop,
  };
}

/**
 * The certificate Pebble serves its API with (made once per folder): lb trusts it with --acme-ca-cert, so a test can
 * configure lb before the CA runs.
 */
export function pebbleServerCertificate(dir: string): { cert: string; key: string } {
  const [cert, key] = [join(dir, "localhost.pem"), join(dir, "localhost.key")];
  return existsSync(cert) && existsSync(key) ? { cert, key } : selfSignedCertificate(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
}

async function resolvesToLoopback(dnsPort: number): Promise<boolean> {
  const resolver = new Resolver({ timeout: 200, tries: 1 });
  resolver.setServers([`127.0.0.1:${dnsPort}`]);
  return resolver.resolve4("ready.example.test").then((addresses) => addresses.includes("127.0.0.1"), () => false);
}

async function fetchText(url: string, caFile: string): Promise<string | null> {
  try {
    const response = await fetch(url, { tls: { ca: await Bun.file(caFile).text() } });
    return response.ok ? response.text() : null;
  } catch {
    return null;
  }
}

/** A free TCP port on loopback (also free for UDP there in practice: the tests' DNS server binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
