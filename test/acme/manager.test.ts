/**
 * The ACME manager in this process with a hand-moved clock, against Pebble: retries after a CA that was down, two
 * instances sharing a state directory, and the state directory's files and locks. The clock decides when attempts
 * run; the orders themselves are real.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createConsola } from "consola";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { format } from "node:util";
import { ChallengeAnswers } from "../../src/acme/challenges.ts";
import { acmeOrderer } from "../../src/acme/client.ts";
import { AcmeManager } from "../../src/acme/manager.ts";
import { type Clock, ORDER_BACKOFF, renewalTime, retryDelay } from "../../src/acme/scheduler.ts";
import { STALE_LOCK_MS, StateStore } from "../../src/acme/store.ts";
import { describeCertificate } from "../../src/front/certificates.ts";
import type { TlsCertificates } from "../../src/front/listeners.ts";
import { type Pebble, freePort, pebbleMissing, pebbleServerCertificate, startPebble } from "./pebble.ts";
import { resolveConfig } from "../../src/config/load.ts";
import { ROOT, waitFor } from "../helpers.ts";

/** An order's deadline: Pebble's checks run beside the rest of the suite, on a busy machine. */
const ORDER_MS = 20_000;
const dir = mkdtempSync(join(tmpdir(), "lb-acme-manager-"));
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map(async (stop) => stop()));
});

/** Time that moves only when the test says: due timers run in order as it passes. */
class ManualClock implements Clock {
  #now = Date.now();
  #timers: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.#now + ms, fn };
    this.#timers.push(timer);
    return () => void (this.#timers = this.#timers.filter((t) => t !== timer));
  }

  advance(ms: number): void {
    this.#now += ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= this.#now).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.#timers = this.#timers.filter((t) => t !== due);
      due.fn();
    }
  }
}

function capturedLog() {
  const lines: string[] = [];
  const log = createConsola({ level: 4, throttle: 0, reporters: [{ log: (entry) => lines.push(`${entry.type}: ${format(...entry.args)}`) }] });
  return { log, lines };
}

/** Answers Pebble's HTTP-01 checks from `challenges` on `port` (lb's redirect listener does this in lb). */
function challengeServer(port: number, challenges: ChallengeAnswers) {
  const server = Bun.serve({ port, hostname: "127.0.0.1", fetch: (request) => challenges.answer(new URL(request.url).pathname) ?? new Response(null, { status: 404 }) });
  cleanup.push(() => server.stop(true));
}

function managerFor(stateDir: string, directory: string, name: string, clock: Clock, eab = { kid: "", hmac: "" }) {
  const store = new StateStore(stateDir, directory);
  const challenges = new ChallengeAnswers(store);
  const caCert = readFileSync(pebbleServerCertificate(dir).cert, "utf8");
  const account = { acmeCa: directory, acmeCaCert: "", acmeEmail: "", acmeEabKid: eab.kid, acmeEabHmac: eab.hmac };
  const orderer = acmeOrderer(account, store, challenges, caCert);
  const { log, lines } = capturedLog();
  const served: TlsCertificates[] = [];
  const manager = new AcmeManager([name], { store, orderer, challenges, ca: directory, log, clock });
  cleanup.push(() => manager.stop());
  const start = () => manager.start((certificates) => served.push(certificates));
  return { manager, start, challenges, lines, served };
}

describe("when to order", () => {
  test("renewal comes at two thirds of the lifetime, up to a fifteenth of it earlier", () => {
    const lifetime = 90 * 86_400_000;
    const facts = { notBefore: 0, notAfter: lifetime };
    expect(renewalTime(facts, 0)).toBe(lifetime * (2 / 3));
    expect(renewalTime(facts, 0.999)).toBeGreaterThan(lifetime * (2 / 3 - 1 / 15));
    expect(renewalTime(facts, 0.999) / 86_400_000).toBeCloseTo(54, 0);
  });

  test("retries wait 2, 4, 8, 16, 32 minutes, then an hour", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => retryDelay(n, ORDER_BACKOFF) / 60_000)).toEqual([2, 4, 8, 16, 32, 60, 60, 60]);
  });
});

describe("the state directory", () => {
  test("a certificate is written atomically with mode 0600, and read back as key and chain", () => {
    const root = join(dir, "store");
    const store = new StateStore(root, "https://ca.example/dir");
    store.writeCertificate("a.example", { key: "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n", cert: "-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n" });
    expect(store.certificatePath("a.example")).toBe(join(root, "acme", "ca.example-dir", "certificates", "a.example.pem"));
    expect(statSync(store.certificatePath("a.example")).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(root, "acme", "ca.example-dir", "certificates"))).toEqual(["a.example.pem"]);
    expect(store.readCertificate("a.example")).toEqual({
      key: "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
      cert: "-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n",
    });
    expect(store.keepAccountKey("first")).toBe("first");
    expect(store.keepAccountKey("second")).toBe("first"); // another instance's key, stored first, wins
  });

  test("an order lock is held against others until released; one left untouched past the stale timeout is taken over", () => {
    const now = Date.now();
    const [one, two] = [new StateStore(join(dir, "locks"), "https://ca.example/dir"), new StateStore(join(dir, "locks"), "https://ca.example/dir")];
    expect(one.tryLock("a.example", now)).toBe(true);
    expect(two.tryLock("a.example", now)).toBe(false);
    one.unlock("a.example");
    expect(two.tryLock("a.example", now)).toBe(true);
    const lockFile = join(dir, "locks", "acme", "ca.example-dir", "locks", "a.example.lock");
    const old = new Date(now - STALE_LOCK_MS - 1000);
    utimesSync(lockFile, old, old);
    expect(one.tryLock("a.example", now)).toBe(true);
    expect(existsSync(lockFile)).toBe(true);
  });
});

const described = pebbleMissing ? describe.skip : describe;

described("with Pebble", () => {
  const pebbles: Pebble[] = [];
  afterAll(async () => {
    await Promise.all(pebbles.map((pebble) => pebble.stop()));
  });

  test("a CA that is down is retried after 2, then 4 minutes, each failure logged, and the certificate comes once it is up", async () => {
    const [caPort, httpPort] = [await freePort(), await freePort()];
    const clock = new ManualClock();
    const directory = `https://127.0.0.1:${caPort}/dir`;
    const { manager, start, challenges, lines, served } = managerFor(join(dir, "state-retry"), directory, "retry.example.test", clock);
    challengeServer(httpPort, challenges);
    start();
    clock.advance(0);
    const failures = () => lines.filter((line) => line.includes("could not get a certificate for retry.example.test"));
    await waitFor(() => failures().length === 1, "the first failure");
    expect(failures()[0]).toMatch(/cannot reach the ACME directory: .*next try in 2m .*until then HTTPS for retry\.example\.test fails the handshake/);
    clock.advance(2 * 60_000 - 1);
    expect(lines.filter((line) => line.includes("ordering"))).toHaveLength(1); // not before its time
    clock.advance(1);
    await waitFor(() => failures().length === 2, "the second failure");
    expect(failures()[1]).toContain("next try in 4m");
    expect(lines.find((line) => line.includes("attempt 2"))).toBeDefined();

    pebbles.push(await startPebble(dir, { httpPort, port: caPort }));
    clock.advance(4 * 60_000);
    await waitFor(() => served.length === 1, () => `the certificate; log:\n${lines.join("\n")}`, ORDER_MS);
    expect(describeCertificate(served[0]![0]!.cert).names).toEqual(["retry.example.test"]);
    expect(served[0]![0]!.serverName).toBe("retry.example.test");
    expect(manager.describe()[0]).toMatchObject({ names: ["retry.example.test"], lastError: null });
  }, 30_000);

  test("two instances sharing a state directory: one orders, the other waits for its lock and serves what it stored", async () => {
    const httpPort = await freePort();
    const pebble = await startPebble(join(dir), { httpPort, port: await freePort() });
    pebbles.push(pebble);
    const clock = new ManualClock();
    const stateDir = join(dir, "state-shared");
    const one = managerFor(stateDir, pebble.directory, "shared.example.test", clock);
    const two = managerFor(stateDir, pebble.directory, "shared.example.test", clock);
    challengeServer(httpPort, one.challenges);
    one.start();
    two.start();
    clock.advance(0);
    // The first one's order is on the network now (its lock held): the second looks three times, and says so once.
    clock.advance(2000);
    clock.advance(2000);
    expect(one.served).toHaveLength(0);
    await waitFor(() => one.served.length === 1, "the first instance's certificate", ORDER_MS);
    expect(two.lines.filter((line) => line.includes("another lb orders shared.example.test now"))).toEqual([expect.stringContaining("looking again every 2s")]);
    clock.advance(2000);
    await waitFor(() => two.served.length === 1, "the second instance's certificate", ORDER_MS);
    expect(two.served[0]![0]!.cert).toBe(one.served[0]![0]!.cert);
    expect(two.lines.find((line) => line.includes("using the certificate another lb stored"))).toBeDefined();
    expect(pebble.orders()).toBe(1);
  }, 30_000);

  test("a challenge the CA cannot check is logged with the CA's reason and retried; it succeeds once lb answers", async () => {
    const httpPort = await freePort();
    const pebble = await startPebble(dir, { httpPort, port: await freePort() });
    pebbles.push(pebble);
    const clock = new ManualClock();
    const { start, challenges, lines, served } = managerFor(join(dir, "state-challenge"), pebble.directory, "unchecked.example.test", clock);
    start();
    clock.advance(0); // nothing answers on httpPort yet: the CA's check is refused
    const failure = await waitFor(() => lines.find((line) => line.includes("could not get a certificate for unchecked.example.test")), "the failed challenge");
    expect(failure).toMatch(/connection refused|refused/i);
    expect(failure).toContain("next try in 2m");
    challengeServer(httpPort, challenges);
    clock.advance(2 * 60_000);
    await waitFor(() => served.length === 1, () => `the certificate; log:\n${lines.join("\n")}`, ORDER_MS);
  }, 30_000);

  test("a reload that finds a held certificate's file deleted orders anew at once, serving the old one until the new one is there; with the file in place it orders nothing; another instance sharing the directory serves the new one at its reload, and orders anew at a reload that finds the file damaged", async () => {
    const httpPort = await freePort();
    const pebble = await startPebble(dir, { httpPort, port: await freePort() });
    pebbles.push(pebble);
    const clock = new ManualClock();
    const [name, stateDir] = ["deleted.example.test", join(dir, "state-deleted")];
    const one = managerFor(stateDir, pebble.directory, name, clock);
    challengeServer(httpPort, one.challenges);
    one.start();
    clock.advance(0);
    await waitFor(() => one.served.length === 1, () => `the certificate; log:\n${one.lines.join("\n")}`, ORDER_MS);
    const serialServed = (manager: AcmeManager) => describeCertificate(manager.certificates()[0]!.cert).serial;
    const first = serialServed(one.manager);
    const renewal = one.manager.describe()[0]!.next;
    const two = managerFor(stateDir, pebble.directory, name, clock); // starts with the stored certificate
    two.start();

    one.manager.follow([name]);
    expect(one.manager.describe()[0]!.next).toBe(renewal);

    rmSync(new StateStore(stateDir, pebble.directory).certificatePath(name));
    one.manager.follow([name]);
    expect(one.lines.find((line) => line.includes("was deleted"))).toContain(`ordering a new one now (until it is there, serial ${first}`);
    expect(one.manager.describe()[0]!.next).toBe(clock.now());
    expect(serialServed(one.manager)).toBe(first); // nothing ordered until the clock says so
    clock.advance(0);
    await waitFor(() => one.served.length === 2, () => `the new certificate; log:\n${one.lines.join("\n")}`, ORDER_MS);
    const second = serialServed(one.manager);
    expect(second).not.toBe(first);

    expect(serialServed(two.manager)).toBe(first);
    two.manager.follow([name]);
    expect(serialServed(two.manager)).toBe(second);
    expect(two.served).toHaveLength(1);
    expect(two.lines.find((line) => line.includes("serving the new certificate in the state directory"))).toContain(`serial ${second}`);
    expect(pebble.orders()).toBe(2);

    writeFileSync(new StateStore(stateDir, pebble.directory).certificatePath(name), "damaged");
    two.manager.follow([name]);
    expect(two.lines.find((line) => line.includes("is not served"))).toContain("ordering a new one");
    expect(two.manager.describe()[0]!.next).toBe(clock.now());
    expect(serialServed(two.manager)).toBe(second);
  }, 30_000);

  test("External Account Binding: without the key the CA refuses (logged), with --acme-eab-kid/--acme-eab-hmac it issues", async () => {
    const httpPort = await freePort();
    const eab = { kid: "kid-1", hmac: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W" };
    const pebble = await startPebble(dir, { httpPort, port: await freePort(), eab });
    pebbles.push(pebble);
    const clock = new ManualClock();
    const without = managerFor(join(dir, "state-no-eab"), pebble.directory, "eab.example.test", clock);
    const withKey = managerFor(join(dir, "state-eab"), pebble.directory, "eab.example.test", clock, eab);
    challengeServer(httpPort, withKey.challenges);
    without.start();
    clock.advance(0);
    const refused = await waitFor(() => without.lines.find((line) => line.includes("could not get a certificate")), "the refusal");
    expect(refused).toMatch(/externalAccountBinding/);
    withKey.start();
    clock.advance(0);
    await waitFor(() => withKey.served.length === 1, () => `the certificate; log:\n${withKey.lines.join("\n")}`, ORDER_MS);
    expect(withKey.lines.join("\n")).not.toContain(eab.hmac);
  }, 30_000);
});

describe("a state directory lb cannot use", () => {
  test("is reported at each try and tried again later, without a crash", async () => {
    const file = join(dir, "not-a-directory");
    writeFileSync(file, "");
    const clock = new ManualClock();
    // Under a file: mkdir fails with ENOTDIR even for root, whom permissions do not stop.
    const { start, lines } = managerFor(join(file, "state"), "https://127.0.0.1:1/dir", "nodir.example.test", clock);
    expect(lines.find((line) => line.includes("cannot read the stored certificate for nodir.example.test"))).toContain("ENOTDIR");
    start();
    clock.advance(0);
    const failure = await waitFor(() => lines.find((line) => line.includes("could not get a certificate for nodir.example.test")), "the failure");
    expect(failure).toContain("ENOTDIR");
    expect(failure).toContain("next try in 2m");
  });
});

describe("where the state is kept by default", () => {
  const stateDir = (env: Record<string, string | undefined>) => {
    const saved = { STATE_DIRECTORY: process.env.STATE_DIRECTORY, XDG_DATA_HOME: process.env.XDG_DATA_HOME };
    Object.assign(process.env, env);
    for (const [name, value] of Object.entries(env)) if (value === undefined) delete process.env[name];
    try {
      return resolveConfig([{ source: "test", values: { backends: ["http://127.0.0.1:1"] } }], { stdoutIsTTY: false }).stateDir;
    } finally {
      for (const [name, value] of Object.entries(saved)) if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };

  test("systemd's $STATE_DIRECTORY (the unit's StateDirectory=lb), else $XDG_DATA_HOME/lb", () => {
    expect(stateDir({ STATE_DIRECTORY: "/var/lib/lb" })).toBe("/var/lib/lb");
    if (process.getuid?.() !== 0) expect(stateDir({ STATE_DIRECTORY: undefined, XDG_DATA_HOME: "/data" })).toBe("/data/lb");
    expect(readFileSync(join(ROOT, "deploy/systemd/lb.service"), "utf8")).toMatch(/^StateDirectory=lb$/m);
  });
});
