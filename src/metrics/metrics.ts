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

/**
 * The plain counters kept per backend, declared once: the class's fields, the snapshot a worker sends, the primary's
 * sum and /metrics all follow from this table. `labels` are the Prometheus labels beside `backend`.
 */
export const BACKEND_COUNTERS = {
  connectErrors: { metric: "lb_upstream_connect_errors_total", type: "counter", help: "Refused, unresolvable or timed-out connections to a backend." },
  resends: { metric: "lb_upstream_resends_total", type: "counter", help: "Idempotent requests sent again on a fresh connection after a reused one closed before answering." },
  strayBytes: { metric: "lb_upstream_protocol_errors_total", type: "counter", help: "Connections closed because the backend broke HTTP/1.1, by kind: bytes that answer no request (stray-bytes), an answer that is not acceptable HTTP (malformed).", labels: 'kind="stray-bytes"' },
  malformedResponses: { metric: "lb_upstream_protocol_errors_total", type: "counter", help: "Connections closed because the backend broke HTTP/1.1, by kind: bytes that answer no request (stray-bytes), an answer that is not acceptable HTTP (malformed).", labels: 'kind="malformed"' },
  streamsCut: { metric: "lb_streams_cut_total", type: "counter", help: "Answers cut while streaming: the backend broke off or went silent past --upstream-read-timeout, or the client read nothing for as long." },
  descriptorsExhausted: { metric: "lb_fd_exhausted_total", type: "counter", help: "Connections to the backend lb could not open because it was out of file descriptors (answered 503; the backend is not blamed)." },
  requestBytes: { metric: "lb_request_body_bytes_total", type: "counter", help: "Request body bytes taken from clients for the backend." },
  responseBytes: { metric: "lb_response_body_bytes_total", type: "counter", help: "Response body bytes passed from the backend to clients." },
  compressedZstd: { metric: "lb_compressed_responses_total", type: "counter", help: "Answers lb compressed for the client (compress = true), by coding.", labels: 'encoding="zstd"' },
  compressedBr: { metric: "lb_compressed_responses_total", type: "counter", help: "Answers lb compressed for the client (compress = true), by coding.", labels: 'encoding="br"' },
  compressedGzip: { metric: "lb_compressed_responses_total", type: "counter", help: "Answers lb compressed for the client (compress = true), by coding.", labels: 'encoding="gzip"' },
  compressionIn: { metric: "lb_compression_input_bytes_total", type: "counter", help: "Body bytes of compressed answers as the backend sent them." },
  compressionOut: { metric: "lb_compression_output_bytes_total", type: "counter", help: "Body bytes of compressed answers as the client got them." },
  retries: { metric: "lb_retries_total", type: "counter", help: "Attempts that retried a request on this backend after another failed." },
  tunnels: { metric: "lb_websocket_connections_total", type: "counter", help: "WebSocket tunnels opened to the backend." },
  tunnelsOpen: { metric: "lb_websocket_connections_active", type: "gauge", help: "WebSocket tunnels open now." },
  checksPassed: { metric: "lb_health_checks_total", type: "counter", help: "Active health checks, by backend and result.", labels: 'result="pass"' },
  checksFailed: { metric: "lb_health_checks_total", type: "counter", help: "Active health checks, by backend and result.", labels: 'result="fail"' },
} as const satisfies Record<string, { metric: string; type: "counter" | "gauge"; help: string; labels?: string }>;

export type BackendCounter = keyof typeof BACKEND_COUNTERS;

/** The latency histograms kept per backend, declared once like the counters. */
export const BACKEND_HISTOGRAMS = {
  duration: { metric: "lb_request_duration_seconds", help: "Time from a request's arrival to its last response byte, by backend." },
  headers: { metric: "lb_upstream_header_duration_seconds", help: "Time from sending a request to the backend to its response headers (its time to first byte), by backend." },
} as const;
export type BackendHistogram = keyof typeof BACKEND_HISTOGRAMS;
export const HISTOGRAM_NAMES = Object.keys(BACKEND_HISTOGRAMS) as BackendHistogram[];

/** Counts per LATENCY_BUCKETS slot (plus +Inf), not cumulative, with the sum and count of what was observed. */
export class Histogram {
  readonly buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  /** Returns the bucket the value fell in. */
  observe(seconds: number): number {
    const slot = bucketOf(seconds);
    this.buckets[slot]!++;
    this.sum += seconds;
    this.count++;
    return slot;
  }

  /** Adds another histogram's counts into this one. */
  add(part: { buckets: readonly number[]; sum: number; count: number }): void {
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i]! += part.buckets[i] ?? 0;
    this.sum += part.sum;
    this.count += part.count;
  }

  /** Makes this one what `from` says (a worker's latest report). */
  copy(from: { buckets: readonly number[]; sum: number; count: number }): void {
    this.buckets.splice(0, this.buckets.length, ...from.buckets);
    this.sum = from.sum;
    this.count = from.count;
  }
}

/**
 * Counts kept for the pool as a whole, by a key, declared once like BACKEND_COUNTERS: a worker's snapshot, the
 * primary's sum and /metrics follow from this list.
 */
export const POOL_COUNTS = {
  /** Requests that never reached a backend (no healthy backend, queue full, client gone), by status. */
  unrouted: "status",
  /** Requests lb turned away itself, by reason: max-connections, queue-full, queue-timeout, no-backend, no-route, deny, rate-limit. */
  rejected: "reason",
  /**
   * Hook failures, by hook: onRequest and onResponse (threw, timed out, refused), and escaped (an error from hook code
   * outside a hook's call: a timer or callback it set up, a promise nobody handled; hooks/escaped.ts).
   */
  hookErrors: "hook",
  /** Spans by outcome: exported, or dropped (queue-full, export-failed); see tracing/exporter.ts. */
  traceSpans: "outcome",
  /** --accept-proxy connections by outcome: accepted, local, or closed as untrusted, invalid, truncated, timeout. */
  proxyProtocol: "outcome",
} as const;
export type PoolCount = keyof typeof POOL_COUNTS;
export const POOL_COUNT_NAMES = Object.keys(POOL_COUNTS) as PoolCount[];
export const COUNTER_NAMES = Object.keys(BACKEND_COUNTERS) as BackendCounter[];
export type Counters = Record<BackendCounter, number>;

/** Each counter of BACKEND_COUNTERS is a field of BackendMetrics (set to 0 by its constructor). */
export interface BackendMetrics extends Counters {}

export class BackendMetrics {
  /** Requests by "code method", e.g. "200 GET". */
  readonly requests = new Map<string, number>();
  readonly histograms: Record<BackendHistogram, Histogram> = { duration: new Histogram(), headers: new Histogram() };
  /** Ring of the last WINDOW_SECONDS seconds, indexed by epoch second modulo its length. */
  readonly seconds: Array<Second & { at: number }> = Array.from({ length: WINDOW_SECONDS }, () => ({
    at: -1,
    requests: 0,
    errors: 0,
    buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0),
  }));

  constructor() {
    for (const name of COUNTER_NAMES) this[name] = 0;
  }

  record(method: string, status: number, seconds: number, nowMs: number): void {
    const key = requestKey(status, method);
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const slot = this.histograms.duration.observe(seconds);
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

/** "code method" keys by method, then status: made once, not for every request (the requests map is keyed by them). */
const REQUEST_KEYS = new Map<string, string[]>();

function requestKey(status: number, method: string): string {
  let keys = REQUEST_KEYS.get(method);
  if (!keys) REQUEST_KEYS.set(method, (keys = []));
  return (keys[status] ??= `${status} ${method}`);
}

const EMPTY_BUCKETS = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);

export function bucketOf(seconds: number): number {
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]!) return i;
  return LATENCY_BUCKETS.length;
}

/**
 * A quantile estimated from bucket counts, in seconds, as PromQL's histogram_quantile does: linear within the bucket
 * it falls in (from the bucket below's bound, 0 for the first), and the last finite bound when it falls past them.
 * Null when there is no sample.
 */
export function quantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
    const count = buckets[i]!;
    if (count > 0 && below + count >= rank) {
      const lower = i === 0 ? 0 : LATENCY_BUCKETS[i - 1]!;
      return lower + (LATENCY_BUCKETS[i]! - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return LATENCY_BUCKETS.at(-1)!;
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
  /** Pool-wide counts by key (see POOL_COUNTS). */
  readonly pool: Record<PoolCount, Map<string, number>> = { unrouted: new Map(), rejected: new Map(), hookErrors: new Map(), traceSpans: new Map(), proxyProtocol: new Map() };
  /** Config reloads (SIGHUP, the file changing, the admin API) by result; the start counts as the first success. */
  readonly reloads: { success: number; failure: number; lastSuccessMs: number };

  constructor(readonly startedAt = Date.now()) {
    this.reloads = { success: 0, failure: 0, lastSuccessMs: startedAt };
  }

  of(url: string): BackendMetrics {
    let metrics = this.backends.get(url);
    if (!metrics) this.backends.set(url, (metrics = new BackendMetrics()));
    return metrics;
  }

  /** `n` more (one by default) of `key` in a pool-wide count. */
  count(name: PoolCount, key: string, n = 1): void {
    const counts = this.pool[name];
    counts.set(key, (counts.get(key) ?? 0) + n);
  }
}
