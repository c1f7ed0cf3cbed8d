/**
 * --acme: one certificate per name, each with its own schedule. At the start, a stored certificate that is sound is
 * served at once and ordered again only when due; a damaged one is reported, never served, and ordered anew. An
 * order holds the name's lock in the state directory, and looks at the stored certificate again once it has the lock
 * (another instance sharing the directory may have just renewed it). Every attempt and its outcome are logged; a
 * failure is retried with backoff, never thrown. Runs in one process (the primary with --workers), which hands the
 * certificates on through `onChange`.
 */
import { type CertificateFacts, type CertificateStatus, certificateSummary, describeCertificate, pairProblem } from "../front/certificates.ts";
import { readFileSync } from "node:fs";
import { formatDuration } from "../config/duration.ts";
import { ConfigError } from "../config/load.ts";
import { type Config, acmeNames } from "../config/types.ts";
import type { TlsCertificates } from "../front/listeners.ts";
import type { Logger } from "../log/log.ts";
import { ChallengeAnswers } from "./challenges.ts";
import { type CertificateOrderer, acmeOrderer } from "./client.ts";
import { type Backoff, type Clock, ORDER_BACKOFF, renewalTime, retryDelay, systemClock } from "./scheduler.ts";
import { LOCK_REFRESH_MS, StateStore, type StoredPair } from "./store.ts";

/** How often an instance looks again while another one holds a name's lock. */
const LOCK_POLL_MS = 2_000;

interface Held extends StoredPair {
  facts: CertificateFacts;
  renewAt: number;
}

interface ManagedName {
  name: string;
  held: Held | null;
  failures: number;
  /** When the next attempt (or renewal) runs. */
  nextAt: number;
  lastError: string | null;
  /** Another instance holds the name's lock (said once in the log, not at every look). */
  waitingForLock: boolean;
  cancel: () => void;
}

export interface AcmeOptions {
  store: StateStore;
  orderer: CertificateOrderer;
  challenges: ChallengeAnswers;
  /** The directory URL, for log lines and `lb certs`. */
  ca: string;
  log: Logger;
  clock?: Clock;
  backoff?: Backoff;
  random?: () => number;
}

export class AcmeManager {
  readonly #names = new Map<string, ManagedName>();
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  #stopped = false;
  /** Where the certificates go each time they change (the traffic side), from start on. */
  #onChange: (certificates: TlsCertificates) => void = () => {};

  constructor(
    names: readonly string[],
    private readonly options: AcmeOptions,
  ) {
    this.#clock = options.clock ?? systemClock;
    this.#backoff = options.backoff ?? ORDER_BACKOFF;
    this.#random = options.random ?? Math.random;
    for (const name of names) this.#add(name);
  }

  get challenges(): ChallengeAnswers {
    return this.options.challenges;
  }

  /**
   * Starts each name's schedule (a renewal when its stored certificate is due, an order at once when it has none);
   * `onChange` gets every certificate to serve each time one is obtained.
   */
  start(onChange: (certificates: TlsCertificates) => void): void {
    this.#onChange = onChange;
    for (const managed of this.#names.values()) this.#scheduleFirst(managed);
  }

  /**
   * Names a reload adds start their schedule; names it drops stop theirs and are no longer served (their files stay in
   * the state directory); for a name it keeps, the stored certificate is read again (#rereadStored). The listener
   * hears of it only when what it serves changes.
   */
  follow(names: readonly string[]): void {
    const servedNames = () => this.certificates().map((served) => served.serverName).join();
    const before = servedNames();
    for (const [name, managed] of this.#names) {
      if (names.includes(name)) {
        this.#rereadStored(managed);
        continue;
      }
      managed.cancel();
      this.#names.delete(name);
    }
    const added = names.filter((name) => !this.#names.has(name)).map((name) => this.#add(name));
    for (const managed of added) this.#scheduleFirst(managed);
    if (servedNames() !== before) this.#onChange(this.certificates());
  }

  /** The certificates to serve, one SNI entry per name. */
  certificates(): TlsCertificates {
    return [...this.#names.values()].flatMap(({ name, held }) => (held ? [{ serverName: name, cert: held.cert, key: held.key }] : []));
  }

  /** Each name's certificate (or that it has none yet), with its next renewal or try. */
  describe(): CertificateStatus[] {
    const source = { kind: "acme" as const, ca: this.options.ca };
    return [...this.#names.values()].map(({ name, held, nextAt, lastError }) => ({
      names: held?.facts.names ?? [name],
      source,
      facts: held?.facts ?? null,
      next: nextAt,
      lastError,
    }));
  }

  stop(): void {
    this.#stopped = true;
    for (const managed of this.#names.values()) managed.cancel();
  }

  /** A name, with its stored certificate when that is sound (a damaged one is reported and left unserved). */
  #add(name: string): ManagedName {
    const managed: ManagedName = { name, held: null, failures: 0, nextAt: 0, lastError: null, waitingForLock: false, cancel: () => {} };
    this.#names.set(name, managed);
    const stored = this.#readStored(name);
    if (stored) managed.held = stored;
    return managed;
  }

  /**
   * A reload reads a held certificate's file again. Deleting it and reloading is how an operator replaces a certificate
   * that must go (a revoked one: lb has no way to learn that itself), so a deleted or damaged file is ordered anew at
   * once, the held certificate in use until the new one is there; a different sound one (another lb sharing the state
   * directory ordered it) is served.
   */
  #rereadStored(managed: ManagedName): void {
    const { store, log } = this.options;
    const { name, held } = managed;
    if (!held) return; // its order is under way or waits for its retry
    const deleted = !store.hasCertificate(name);
    const stored = deleted ? null : this.#readStored(name); // a damaged one is reported there
    if (stored?.facts.serial === held.facts.serial) return;
    if (stored) {
      log.info(`acme: ${name}: serving the new certificate in the state directory (${certificateSummary(stored.facts)})`);
      return this.#adopt(managed, stored);
    }
    if (deleted) {
      log.warn(
        `acme: the stored certificate for ${name} (${store.certificatePath(name)}) was deleted; ordering a new one now ` +
          `(until it is there, ${certificateSummary(held.facts)} stays in use)`,
      );
    }
    this.#schedule(managed, this.#clock.now());
  }

  #readStored(name: string): Held | null {
    const { store, log } = this.options;
    let pair: StoredPair | null;
    try {
      pair = store.readCertificate(name);
    } catch (error) {
      log.error(`acme: cannot read the stored certificate for ${name} (${(error as Error).message}); ordering a new one`);
      return null;
    }
    if (!pair) return null;
    const problem = pairProblem(pair.cert, pair.key, name, this.#clock.now());
    if (problem) {
      log.warn(`acme: the stored certificate for ${name} (${store.certificatePath(name)}) is not served: ${problem}; ordering a new one`);
      return null;
    }
    return this.#hold(pair);
  }

  #hold(pair: StoredPair): Held {
    const facts = describeCertificate(pair.cert);
    return { ...pair, facts, renewAt: renewalTime(facts, this.#random()) };
  }

  /** Its renewal when it has a certificate, else an order at once. */
  #scheduleFirst(managed: ManagedName): void {
    this.#schedule(managed, managed.held ? managed.held.renewAt : this.#clock.now());
  }

  #schedule(managed: ManagedName, at: number): void {
    managed.cancel();
    managed.nextAt = at;
    managed.cancel = this.#clock.after(Math.max(at - this.#clock.now(), 0), () => void this.#attempt(managed));
  }

  /** One try for a name, which never throws: a failure (the CA's, the state directory's) is logged and tried again. */
  async #attempt(managed: ManagedName): Promise<void> {
    if (this.#stopped || this.#names.get(managed.name) !== managed) return;
    try {
      await this.#tryLocked(managed);
    } catch (error) {
      this.#failed(managed, error);
    }
  }

  /** The name's lock, then the stored certificate if another instance renewed it, else an order. */
  async #tryLocked(managed: ManagedName): Promise<void> {
    const { store, log } = this.options;
    const { name } = managed;
    if (!store.tryLock(name, this.#clock.now())) {
      if (!managed.waitingForLock) log.info(`acme: another lb orders ${name} now (its lock is in ${store.root}); looking again every ${formatDuration(LOCK_POLL_MS)}`);
      managed.waitingForLock = true;
      return this.#schedule(managed, this.#clock.now() + LOCK_POLL_MS);
    }
    managed.waitingForLock = false;
    const cancelRefresh = this.#refreshLock(name);
    try {
      const renewedElsewhere = this.#readStored(name);
      if (renewedElsewhere && renewedElsewhere.facts.serial !== managed.held?.facts.serial && this.#clock.now() < renewedElsewhere.renewAt) {
        log.info(`acme: ${name}: using the certificate another lb stored (${certificateSummary(renewedElsewhere.facts)})`);
        return this.#adopt(managed, renewedElsewhere);
      }
      await this.#order(managed);
    } finally {
      cancelRefresh();
      store.unlock(name);
    }
  }

  async #order(managed: ManagedName): Promise<void> {
    const { store, orderer, log, ca } = this.options;
    const { name } = managed;
    const why = managed.held ? `renewing (${certificateSummary(managed.held.facts)})` : "no certificate yet";
    log.info(`acme: ordering a certificate for ${name} from ${ca} (${why}${managed.failures ? `; attempt ${managed.failures + 1}` : ""})`);
    const started = this.#clock.now();
    const pair = await orderer(name);
    const problem = pairProblem(pair.cert, pair.key, name, this.#clock.now());
    if (problem) throw new Error(`the CA's certificate is unusable: ${problem}`);
    store.writeCertificate(name, pair);
    if (this.#stopped) return;
    const held = this.#hold(pair);
    // Served first, then said: a client that acts on the line finds the certificate.
    this.#adopt(managed, held);
    log.info(
      `acme: certificate for ${name} obtained in ${formatDuration(this.#clock.now() - started)}: ${certificateSummary(held.facts)}; ` +
        `renewal at ${new Date(held.renewAt).toISOString()}`,
    );
  }

  #adopt(managed: ManagedName, held: Held): void {
    managed.held = held;
    managed.failures = 0;
    managed.lastError = null;
    this.#schedule(managed, held.renewAt);
    this.#onChange(this.certificates());
  }

  #failed(managed: ManagedName, error: unknown): void {
    if (this.#stopped) return;
    managed.failures++;
    managed.lastError = describeAcmeError(error);
    const delay = retryDelay(managed.failures, this.#backoff);
    const next = new Date(this.#clock.now() + delay).toISOString();
    const serving = managed.held
      ? `the current certificate stays in use (${certificateSummary(managed.held.facts)})`
      : `until then HTTPS for ${managed.name} fails the handshake`;
    this.options.log.error(
      `acme: could not get a certificate for ${managed.name} from ${this.options.ca}: ${managed.lastError}; ` +
        `next try in ${formatDuration(delay)} (${next}); ${serving}`,
    );
    this.#schedule(managed, this.#clock.now() + delay);
  }

  /** Keeps the lock fresh while an order runs (a lock left untouched is taken over as a dead instance's). */
  #refreshLock(name: string): () => void {
    let cancel = () => {};
    const tick = () => {
      this.options.store.touchLock(name, this.#clock.now());
      cancel = this.#clock.after(LOCK_REFRESH_MS, tick);
    };
    cancel = this.#clock.after(LOCK_REFRESH_MS, tick);
    return () => cancel();
  }
}

function readCaCert(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`acme-ca-cert: cannot read ${path} (${(error as NodeJS.ErrnoException).code}); check the path`);
  }
}

/** One line from whatever the ACME library threw: the CA's problem document, or the network error. */
export function describeAcmeError(error: unknown): string {
  // acme-client reads the answer of a request that got none (the CA went away mid-order).
  if (error instanceof TypeError) return `the connection to the CA failed during the order (${error.message})`;
  const { message, code } = error as Error & { code?: string };
  const text = (message || String(error)).split("\n")[0]!;
  return code && !text.includes(code) ? `${text} (${code})` : text;
}

/** The manager for a config's --acme names, with its store, challenge answers and CA account. */
export function acmeFor(config: Config, log: Logger): AcmeManager {
  const store = new StateStore(config.stateDir, config.acmeCa);
  const challenges = new ChallengeAnswers(store);
  const caCert = config.acmeCaCert ? readCaCert(config.acmeCaCert) : null;
  const orderer = acmeOrderer(config, store, challenges, caCert);
  return new AcmeManager(acmeNames(config), { store, orderer, challenges, ca: config.acmeCa, log });
}
