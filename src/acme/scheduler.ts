/**
 * When to order: a certificate is renewed at about two thirds of its lifetime (a 90-day one around day 56-60, with
 * jitter so that many instances and names do not all ask at once), and a failed attempt is retried after a delay
 * that doubles up to a ceiling. Time comes from a Clock, so tests move it instead of waiting.
 */

export interface Clock {
  now(): number;
  /** Runs `fn` after `ms`; returns what cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** setTimeout holds at most 2^31-1 ms (24.8 days); a renewal 60 days out waits in steps. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    let timer: ReturnType<typeof setTimeout>;
    const due = Date.now() + ms;
    const wait = () => {
      const left = due - Date.now();
      timer = setTimeout(left > LONGEST_TIMER_MS ? wait : fn, Math.min(Math.max(left, 0), LONGEST_TIMER_MS));
      timer.unref();
    };
    wait();
    return () => clearTimeout(timer);
  },
};

/** Renewal comes at 2/3 of the lifetime, up to this share of the lifetime earlier (random). */
const RENEWAL_SHARE = 2 / 3;
const RENEWAL_JITTER_SHARE = 1 / 15;

/** When to renew a certificate valid from `notBefore` to `notAfter`; `random` in [0, 1) picks the jitter. */
export function renewalTime({ notBefore, notAfter }: { notBefore: number; notAfter: number }, random: number): number {
  const lifetime = notAfter - notBefore;
  return notBefore + lifetime * (RENEWAL_SHARE - RENEWAL_JITTER_SHARE * random);
}

export interface Backoff {
  firstMs: number;
  maxMs: number;
}

/**
 * 2, 4, 8, 16, 32 minutes, then hourly: at most five tries in the first hour, within Let's Encrypt's five failed
 * validations per name per hour.
 */
export const ORDER_BACKOFF: Backoff = { firstMs: 2 * 60_000, maxMs: 60 * 60_000 };

/** The wait after the `failures`-th failure in a row (1 for the first). */
export function retryDelay(failures: number, { firstMs, maxMs }: Backoff): number {
  return Math.min(firstMs * 2 ** Math.max(failures - 1, 0), maxMs);
}
