/**
 * The state directory (--state-dir): the ACME account key, each certificate with its key, the HTTP-01 answers and
 * the order locks. Files are written with mode 0600 and atomically (a temporary file, then a rename), so a crash or
 * a second lb reading at the same moment never sees half a file. Several lb instances may share the directory (a
 * shared volume): a lock file per name keeps two of them from ordering the same certificate at once.
 *
 *   DIR/acme/<ca>/account.pem            the account key for that CA (a directory URL, written as a file name)
 *   DIR/acme/<ca>/certificates/<name>.pem  the private key, then the certificate chain
 *   DIR/acme/<ca>/locks/<name>.lock       held while an instance orders <name>
 *   DIR/acme/challenges/<token>           HTTP-01 answers, for an instance that did not place the order
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";

/** A lock whose file has not been touched for this long belongs to an instance that died while ordering. */
export const STALE_LOCK_MS = 60_000;
/** How often the holder touches its lock, so that it stays fresh while an order takes its time. */
export const LOCK_REFRESH_MS = 10_000;

export interface StoredPair {
  cert: string;
  key: string;
}

export class StateStore {
  readonly #caDir: string;
  readonly #challengeDir: string;

  constructor(readonly root: string, directoryUrl: string) {
    this.#caDir = join(root, "acme", caFolder(directoryUrl));
    this.#challengeDir = join(root, "acme", "challenges");
  }

  /** The account key, or null when this CA has none yet. */
  readAccountKey(): string | null {
    return readIfPresent(join(this.#caDir, "account.pem"));
  }

  /** Stores `pem` as the account key unless one is there already (another instance's); returns the one stored. */
  keepAccountKey(pem: string): string {
    const path = join(this.#caDir, "account.pem");
    return writeAtomically(path, pem, { replace: false }) ? pem : readFileSync(path, "utf8");
  }

  /** The stored key and chain for `name`, null when there is none; the text as stored (it may be damaged). */
  readCertificate(name: string): StoredPair | null {
    const text = readIfPresent(this.certificatePath(name));
    if (text === null) return null;
    const certStart = text.indexOf("-----BEGIN CERTIFICATE-----");
    return certStart < 0 ? { key: text, cert: "" } : { key: text.slice(0, certStart), cert: text.slice(certStart) };
  }

  hasCertificate(name: string): boolean {
    return existsSync(this.certificatePath(name));
  }

  writeCertificate(name: string, pair: StoredPair): void {
    writeAtomically(this.certificatePath(name), `${pair.key.trim()}\n${pair.cert.trim()}\n`);
  }

  certificatePath(name: string): string {
    return join(this.#caDir, "certificates", `${name}.pem`);
  }

  writeChallenge(token: string, keyAuthorization: string): void {
    writeAtomically(join(this.#challengeDir, token), keyAuthorization);
  }

  readChallenge(token: string): string | null {
    return readIfPresent(join(this.#challengeDir, token));
  }

  removeChallenge(token: string): void {
    rmSync(join(this.#challengeDir, token), { force: true });
  }

  /**
   * Takes the order lock for `name`: true when this instance holds it now, false while another (live) one does. A
   * lock older than STALE_LOCK_MS is taken over. Release with unlock; hold it fresh with touchLock.
   */
  tryLock(name: string, now: number): boolean {
    const path = this.#lockPath(name);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), at: new Date(now).toISOString() }));
      closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const age = now - lockTime(path);
    if (age < STALE_LOCK_MS) return false;
    rmSync(path, { force: true });
    return this.tryLock(name, now);
  }

  touchLock(name: string, now: number): void {
    const at = new Date(now);
    try {
      utimesSync(this.#lockPath(name), at, at);
    } catch {
      // Taken over as stale meanwhile: the order goes on; the rename of its result is atomic either way.
    }
  }

  unlock(name: string): void {
    try {
      rmSync(this.#lockPath(name), { force: true });
    } catch {
      // Left behind, it goes stale and is taken over: not worth failing an order that went well.
    }
  }

  #lockPath(name: string): string {
    return join(this.#caDir, "locks", `${name}.lock`);
  }
}

/** "https://acme-v02.api.letsencrypt.org/directory" → "acme-v02.api.letsencrypt.org-directory". */
export function caFolder(directoryUrl: string): string {
  const url = new URL(directoryUrl);
  return `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.]+/g, "-").replace(/-+$/, "");
}

/** The lock file's last touch; 0 (stale) when it vanished meanwhile. */
function lockTime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function readIfPresent(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * Writes `text` to a new file beside `path` (mode 0600, flushed to disk), then renames it over `path`; or, with
 * `replace: false`, links it there only if `path` does not exist (false when it did).
 */
export function writeAtomically(path: string, text: string, { replace = true } = {}): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (replace) renameSync(temporary, path);
    else linkSync(temporary, path);
    return true;
  } catch (error) {
    if (!replace && (error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    if (!replace) unlinkSync(temporary);
    else rmSync(temporary, { force: true });
  }
}
