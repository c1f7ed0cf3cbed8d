/**
 * A rate limit's table: per key, the time its next request is due (GCRA, the generic cell rate algorithm: one number a
 * key, no timer), in a table of fixed size that forgets the keys least recently seen. Keys live in two generations;
 * when the young one is full it becomes the old one and the old one is dropped, so a key seen within the last
 * generation is always kept and memory never holds more than `maxKeys` keys, however many an attacker rotates through.
 * A forgotten key starts again with a full allowance: only a key idle for a whole generation is forgotten.
 */
import type { Rate } from "../config/edge-values.ts";

/** Keys one table holds at most (two generations of half as many). */
export const MAX_KEYS = 100_000;
/** A longer key (a header's value) is kept as its hash: an attacker's 8 KiB values must not fill memory. */
const LONGEST_KEY = 64;
/**
 * The hash's seed, new each process: with a known seed an attacker could make up values that share a victim's hash
 * offline. The hash is kept after a NUL, which no header or cookie value holds, so no short key can name it either.
 */
const HASH_SEED = crypto.getRandomValues(new Uint32Array(1))[0]!;

export interface Verdict {
  allowed: boolean;
  /** Requests the key may still send at once. */
  remaining: number;
  /** Milliseconds until the next request would be allowed (0 when this one was). */
  retryAfterMs: number;
  /** Milliseconds until the key's whole allowance is back. */
  resetMs: number;
}

export class RateLimiter {
  /** Milliseconds a request costs: the period over the count. */
  readonly #interval: number;
  /** How far ahead of now a key's due time may run: its burst of requests. */
  readonly #tolerance: number;
  #young = new Map<string, number>();
  #old = new Map<string, number>();

  constructor(
    readonly rate: Rate,
    /** Requests a key may send at once; 0: the rate's count. */
    readonly burst: number,
    private readonly maxKeys = MAX_KEYS,
  ) {
    this.#interval = rate.periodMs / rate.count;
    this.#tolerance = (burst || rate.count) * this.#interval;
  }

  /** Counts one request of `key` at `now` (ms), if it is allowed. */
  take(key: string, now: number): Verdict {
    const stored = key.length > LONGEST_KEY ? `\0#${Bun.hash(key, HASH_SEED).toString(36)}` : key;
    const due = Math.max(this.#dueOf(stored) ?? now, now);
    const next = due + this.#interval;
    if (next - now > this.#tolerance) {
      this.#store(stored, due); // seen now: a key that keeps trying stays known, and refused
      return { allowed: false, remaining: 0, retryAfterMs: next - now - this.#tolerance, resetMs: due - now };
    }
    this.#store(stored, next);
    return { allowed: true, remaining: Math.floor((this.#tolerance - (next - now)) / this.#interval), retryAfterMs: 0, resetMs: next - now };
  }

  /** Keys held now. */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  #dueOf(key: string): number | undefined {
    return this.#young.get(key) ?? this.#old.get(key);
  }

  #store(key: string, due: number): void {
    if (!this.#young.has(key) && this.#young.size >= this.maxKeys / 2) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, due);
    // The old generation's copy is stale now; dropping it keeps the two from holding one key twice.
    this.#old.delete(key);
  }
}
