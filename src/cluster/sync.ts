/**
 * What the primary and its workers tell each other (see workers.ts): the pool as the primary's health checks see it,
 * going down; each worker's in-flight counts and metrics, coming up. Pure functions over plain data, so they are
 * tested without processes and the messages survive IPC's serialisation.
 */
import type { BackendSpec } from "../config/backend-url.ts";
import type { Config } from "../config/settings.ts";
import { BackendMetrics, type Metrics, type Second, WINDOW_SECONDS } from "../metrics/metrics.ts";
import type { AdminState, Backend } from "../pool/backend.ts";
import type { HealthState } from "../pool/health.ts";
import type { Pool } from "../pool/pool.ts";

/** One backend as the primary decided it: membership, weight, health and the operator's state. */
export interface BackendState {
  url: string;
  weight: number;
  health: HealthState;
  admin: AdminState;
}

/** A worker's counters for one backend. */
export interface BackendLoad {
  url: string;
  inflight: number;
  requests: number;
  errors: number;
  retries: number;
}

export interface MetricsSnapshot {
  backends: Array<{
    url: string;
    requests: Array<[string, number]>;
    buckets: number[];
    durationSum: number;
    durationCount: number;
    connectErrors: number;
    retries: number;
    resends: number;
    tunnels: number;
    tunnelsOpen: number;
    /** Only the last few seconds: older ones do not change any more, and the primary already has them. */
    recent: Array<Second & { at: number }>;
  }>;
  unrouted: Array<[number, number]>;
}

export interface WorkerReport {
  queued: number;
  load: BackendLoad[];
  metrics: MetricsSnapshot;
}

export type ToWorker =
  | { type: "start"; config: Config; state: BackendState[] }
  | { type: "state"; state: BackendState[] }
  | { type: "reload"; config: Config }
  | { type: "reopen-logs" }
  | { type: "stop" };

export type ToPrimary =
  | { type: "ready" }
  | { type: "failed"; message: string; code?: string }
  | { type: "down"; url: string; reason: string }
  /** Access lines, written by the primary: lines from several processes on one pipe would interleave. */
  | { type: "access"; lines: string | Uint8Array }
  | { type: "report"; report: WorkerReport };

export function poolState(pool: Pool): BackendState[] {
  return pool.backends.map(({ url, weight, health, admin }) => ({ url, weight, health, admin }));
}

/**
 * Makes a worker's pool what the primary says: adds and removes backends, copies weights, health and admin states.
 * Outlier ejection stays each worker's own (it follows the requests that worker sent).
 */
export function applyPoolState(pool: Pool, state: readonly BackendState[]): void {
  const listed = new Set(state.map((s) => s.url));
  for (const backend of pool.backends) if (!listed.has(backend.url)) pool.remove(backend);
  for (const { url, weight, health, admin } of state) {
    const spec: BackendSpec = { url, weight };
    const backend = pool.find(url) ?? pool.add(spec);
    backend.weight = weight;
    pool.setAdminState(backend, admin);
    pool.adoptHealth(backend, health);
  }
}

export function backendLoad(backends: readonly Backend[]): BackendLoad[] {
  return backends.map(({ url, inflight, stats }) => ({ url, inflight, ...stats }));
}

/** Sets each of the primary's backends' in-flight and request counts to the sum over the workers' latest reports. */
export function sumLoad(backends: readonly Backend[], reports: Iterable<WorkerReport>): void {
  const totals = new Map<string, BackendLoad>();
  for (const report of reports) {
    for (const load of report.load) {
      const total = totals.get(load.url);
      if (!total) totals.set(load.url, { ...load });
      else {
        total.inflight += load.inflight;
        total.requests += load.requests;
        total.errors += load.errors;
        total.retries += load.retries;
      }
    }
  }
  for (const backend of backends) {
    const total = totals.get(backend.url);
    backend.inflight = total?.inflight ?? 0;
    backend.stats.requests = total?.requests ?? 0;
    backend.stats.errors = total?.errors ?? 0;
    backend.stats.retries = total?.retries ?? 0;
  }
}

/** Seconds of history a report carries (a report is sent every half second, so one second would do; 3 for slack). */
const RECENT_SECONDS = 3;

export function snapshotMetrics(metrics: Metrics, nowMs: number): MetricsSnapshot {
  const oldest = Math.floor(nowMs / 1000) - RECENT_SECONDS;
  return {
    backends: [...metrics.backends].map(([url, m]) => ({
      url,
      requests: [...m.requests],
      buckets: m.buckets,
      durationSum: m.durationSum,
      durationCount: m.durationCount,
      connectErrors: m.connectErrors,
      retries: m.retries,
      resends: m.resends,
      tunnels: m.tunnels,
      tunnelsOpen: m.tunnelsOpen,
      recent: m.seconds.filter((s) => s.at >= oldest),
    })),
    unrouted: [...metrics.unrouted],
  };
}

/** Brings the primary's copy of one worker's metrics up to date with its latest report. */
export function applyMetricsSnapshot(mirror: Metrics, snapshot: MetricsSnapshot): void {
  for (const b of snapshot.backends) {
    const m = mirror.of(b.url);
    m.requests.clear();
    for (const [key, count] of b.requests) m.requests.set(key, count);
    m.buckets.splice(0, m.buckets.length, ...b.buckets);
    m.durationSum = b.durationSum;
    m.durationCount = b.durationCount;
    m.connectErrors = b.connectErrors;
    m.retries = b.retries;
    m.resends = b.resends;
    m.tunnels = b.tunnels;
    m.tunnelsOpen = b.tunnelsOpen;
    for (const second of b.recent) {
      const slot = m.seconds[second.at % WINDOW_SECONDS]!;
      slot.at = second.at;
      slot.requests = second.requests;
      slot.errors = second.errors;
      slot.buckets.splice(0, slot.buckets.length, ...second.buckets);
    }
  }
  mirror.unrouted.clear();
  for (const [status, count] of snapshot.unrouted) mirror.unrouted.set(status, count);
}

/** Adds `part` into `total`: counters and histograms add up, and so do the per-second windows of the same second. */
export function addMetrics(total: Metrics, part: Metrics): void {
  for (const [url, m] of part.backends) addBackendMetrics(total.of(url), m);
  for (const [status, count] of part.unrouted) total.unrouted.set(status, (total.unrouted.get(status) ?? 0) + count);
}

function addBackendMetrics(total: BackendMetrics, part: BackendMetrics): void {
  for (const [key, count] of part.requests) total.requests.set(key, (total.requests.get(key) ?? 0) + count);
  addInto(total.buckets, part.buckets);
  total.durationSum += part.durationSum;
  total.durationCount += part.durationCount;
  total.connectErrors += part.connectErrors;
  total.retries += part.retries;
  total.resends += part.resends;
  total.checksPassed += part.checksPassed;
  total.checksFailed += part.checksFailed;
  total.tunnels += part.tunnels;
  total.tunnelsOpen += part.tunnelsOpen;
  for (const second of part.seconds) {
    if (second.at < 0) continue;
    const slot = total.seconds[second.at % WINDOW_SECONDS]!;
    if (slot.at > second.at) continue; // the total already holds a newer second there
    if (slot.at < second.at) {
      slot.at = second.at;
      slot.requests = 0;
      slot.errors = 0;
      slot.buckets.fill(0);
    }
    slot.requests += second.requests;
    slot.errors += second.errors;
    addInto(slot.buckets, second.buckets);
  }
}

function addInto(total: number[], part: readonly number[]): void {
  for (let i = 0; i < total.length; i++) total[i]! += part[i] ?? 0;
}
