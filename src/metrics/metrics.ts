/**
 * Counters, latency histograms and per-second windows, kept by hand rather than with prom-client: the hot path is a
 * few array increments on objects made once per backend (no label hashing per request), and the same buckets serve
 * Prometheus (/metrics) and the dashboard's live p50/p99 (/api/stats).
 */

/** Histogram upper bounds in seconds (Prometheus' default buckets, extended to a minute). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds of per-second history kept for the dashboard's charts. */
export const WINDOW_SECONDS = 300;

export interface Second {
  requests: number;
  errors: number;
  /** Count per LATENCY_BUCKETS slot (plus one for +Inf), not cumulative. */
  buckets: number[];
}

export class BackendMetrics {
  /** Requests by "code method", e.g. "200 GET". */
  readonly requests = new Map<string, number>();
  readonly buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  durationSum = 0;
  durationCount = 0;
  connectErrors = 0;
  retries = 0;
  /** Requests sent again on a fresh connection after a pooled one closed before answering. */
  resends = 0;
  checksPassed = 0;
  checksFailed = 0;
  /** WebSocket tunnels opened to this backend, and those open now. */
  tunnels = 0;
  tunnelsOpen = 0;
  /** Ring of the last WINDOW_SECONDS seconds, indexed by epoch second modulo its length. */
  readonly seconds: Array<Second & { at: number }> = Array.from({ length: WINDOW_SECONDS }, () => ({
    at: -1,
    requests: 0,
    errors: 0,
    buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0),
  }));

  record(method: string, status: number, seconds: number, nowMs: number): void {
    const key = `${status} ${method}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const slot = bucketOf(seconds);
    this.buckets[slot]!++;
    this.durationSum += seconds;
    this.durationCount++;
    const second = this.#second(nowMs);
    second.requests++;
    if (status >= 500) second.errors++;
    second.buckets[slot]!++;
  }

  /** The per-second slot for `nowMs`, cleared if it still holds an older second. */
  #second(nowMs: number): Second {
    const at = Math.floor(nowMs / 1000);
    const slot = this.seconds[at % WINDOW_SECONDS]!;
    if (slot.at !== at) {
      slot.at = at;
      slot.requests = 0;
      slot.errors = 0;
      slot.buckets.fill(0);
    }
    return slot;
  }

  /** The recorded seconds among the last `count` before `nowMs` (oldest first); missing seconds count as empty. */
  lastSeconds(count: number, nowMs: number): Second[] {
    const now = Math.floor(nowMs / 1000);
    const out: Second[] = [];
    for (let at = now - count + 1; at <= now; at++) {
      const slot = this.seconds[((at % WINDOW_SECONDS) + WINDOW_SECONDS) % WINDOW_SECONDS]!;
      out.push(slot.at === at ? slot : { requests: 0, errors: 0, buckets: EMPTY_BUCKETS });
    }
    return out;
  }
}

const EMPTY_BUCKETS = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);

export function bucketOf(seconds: number): number {
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) return i;
  return LATENCY_BUCKETS.length;
}

/** A quantile estimated from bucket counts (upper bound of the bucket it falls in), in seconds; null when empty. */
export function quantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= q * total) return LATENCY_BUCKETS[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

/** Adds bucket counts of several seconds together. */
export function mergeBuckets(seconds: readonly Second[]): number[] {
  const out = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  for (const second of seconds) for (let i = 0; i < out.length; i++) out[i]! += second.buckets[i]!;
  return out;
}

/** Metrics of every backend by URL (so they survive a backend leaving and coming back), plus pool-wide ones. */
export class Metrics {
  readonly backends = new Map<string, BackendMetrics>();
  /** Requests that never reached a backend (no healthy backend, queue full, client gone), by status. */
  readonly unrouted = new Map<number, number>();

  constructor(readonly startedAt = Date.now()) {}

  of(url: string): BackendMetrics {
    let metrics = this.backends.get(url);
    if (!metrics) this.backends.set(url, (metrics = new BackendMetrics()));
    return metrics;
  }

  recordUnrouted(status: number): void {
    this.unrouted.set(status, (this.unrouted.get(status) ?? 0) + 1);
  }
}
