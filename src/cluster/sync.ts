/**
 * What the primary and its workers tell each other (see workers.ts): the pool as the primary's health checks see it,
 * going down; each worker's in-flight counts and metrics, coming up. Pure functions over plain data, so they are
 * tested without processes and the messages survive IPC's serialisation.
 */
import type { BackendSpec } from "../config/backend-url.ts";
import type { Config } from "../config/types.ts";
import type { TlsCertificates } from "../front/listeners.ts";
import { BackendMetrics, type BackendHistogram, COUNTER_NAMES, HISTOGRAM_NAMES, type Counters, type Metrics, POOL_COUNT_NAMES, type PoolCount, type Second, WINDOW_SECONDS } from "../metrics/metrics.ts";
import type { AdminState, Backend, BackendStats } from "../pool/backend.ts";
import type { HealthState } from "../pool/health.ts";
import type { Pool } from "../pool/pool.ts";

/** One backend as the primary decided it: membership, weight, health and the operator's state. */
export interface BackendState {
  url: string;
  weight: number;
  health: HealthState;
  admin: AdminState;
}

/** A worker's counts for one backend: its requests in flight and the backend's stats. */
export interface BackendLoad extends BackendStats {
  url: string;
  inflight: number;
}

export interface MetricsSnapshot {
  backends: Array<{
    url: string;
    requests: Array<[string, number]>;
    histograms: Record<BackendHistogram, { buckets: number[]; sum: number; count: number }>;
    counters: Counters;
    /** Only the last few seconds: older ones do not change any more, and the primary already has them. */
    recent: Array<Second & { at: number }>;
  }>;
  pool: Record<PoolCount, Array<[string, number]>>;
}

export interface WorkerReport {
  queued: number;
  clients: number;
  load: BackendLoad[];
  metrics: MetricsSnapshot;
}

/** Every pool's backends as the primary decided them, by pool name. */
export type PoolStates = Record<string, BackendState[]>;

export type ToWorker =
  | { type: "start"; config: Config; state: PoolStates; certificates: TlsCertificates }
  | { type: "state"; state: PoolStates }
  /** What --acme obtained, in the primary: the workers serve it. */
  | { type: "certificates"; certificates: TlsCertificates }
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

export function poolStates(pools: ReadonlyMap<string, Pool>): PoolStates {
  const states: PoolStates = {};
  for (const [name, pool] of pools) states[name] = pool.backends.map(({ url, weight, health, admin }) => ({ url, weight, health, admin }));
  return states;
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
    pool.setWeight(backend, weight);
    pool.setAdminState(backend, admin);
    pool.adoptHealth(backend, health);
  }
}

export function backendLoad(backends: readonly Backend[]): BackendLoad[] {
  return backends.map(({ url, inflight, stats }) => ({ url, inflight, ...stats }));
}

/** Sets each of the primary's backends' in-flight count and stats to the sum over the workers' latest reports. */
export function sumLoad(backends: readonly Backend[], reports: Iterable<WorkerReport>): void {
  const totals = new Map<string, BackendLoad>();
  for (const report of reports) {
    for (const load of report.load) {
      const total = totals.get(load.url);
      if (!total) totals.set(load.url, { ...load });
      else for (const key of LOAD_KEYS) total[key] += load[key];
    }
  }
  for (const backend of backends) {
    const total = totals.get(backend.url);
    backend.inflight = total?.inflight ?? 0;
    for (const key of STAT_KEYS) backend.stats[key] = total?.[key] ?? 0;
  }
}

const STAT_KEYS: ReadonlyArray<keyof BackendStats> = ["requests", "errors", "retries"] satisfies Array<keyof BackendStats>;
const LOAD_KEYS: ReadonlyArray<Exclude<keyof BackendLoad, "url">> = ["inflight", ...STAT_KEYS];

/** Seconds of history a report carries (a report is sent every half second, so one second would do; 3 for slack). */
const RECENT_SECONDS = 3;

export function snapshotMetrics(metrics: Metrics, nowMs: number): MetricsSnapshot {
  const oldest = Math.floor(nowMs / 1000) - RECENT_SECONDS;
  return {
    backends: [...metrics.backends].map(([url, m]) => ({
      url,
      requests: [...m.requests],
      histograms: m.histograms,
      counters: countersOf(m),
      recent: m.seconds.filter((s) => s.at >= oldest),
    })),
    pool: Object.fromEntries(POOL_COUNT_NAMES.map((name) => [name, [...metrics.pool[name]]])) as MetricsSnapshot["pool"],
  };
}

/** Brings the primary's copy of one worker's metrics up to date with its latest report. */
export function applyMetricsSnapshot(mirror: Metrics, snapshot: MetricsSnapshot): void {
  for (const b of snapshot.backends) {
    const m = mirror.of(b.url);
    m.requests.clear();
    for (const [key, count] of b.requests) m.requests.set(key, count);
    for (const name of HISTOGRAM_NAMES) m.histograms[name].copy(b.histograms[name]);
    Object.assign(m, b.counters);
    for (const second of b.recent) {
      const slot = m.seconds[second.at % WINDOW_SECONDS]!;
      slot.at = second.at;
      slot.requests = second.requests;
      slot.errors = second.errors;
      slot.buckets.splice(0, slot.buckets.length, ...second.buckets);
    }
  }
  for (const name of POOL_COUNT_NAMES) {
    mirror.pool[name].clear();
    for (const [key, count] of snapshot.pool[name]) mirror.pool[name].set(key, count);
  }
}

/** Adds `part` into `total`: counters and histograms add up, and so do the per-second windows of the same second. */
export function addMetrics(total: Metrics, part: Metrics): void {
  for (const [url, m] of part.backends) addBackendMetrics(total.of(url), m);
  for (const name of POOL_COUNT_NAMES) {
    for (const [key, count] of part.pool[name]) total.pool[name].set(key, (total.pool[name].get(key) ?? 0) + count);
  }
  total.reloads.success += part.reloads.success;
  total.reloads.failure += part.reloads.failure;
  total.reloads.lastSuccessMs = Math.max(total.reloads.lastSuccessMs, part.reloads.lastSuccessMs);
}

function addBackendMetrics(total: BackendMetrics, part: BackendMetrics): void {
  for (const [key, count] of part.requests) total.requests.set(key, (total.requests.get(key) ?? 0) + count);
  for (const name of HISTOGRAM_NAMES) total.histograms[name].add(part.histograms[name]);
  for (const name of COUNTER_NAMES) total[name] += part[name];
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

function countersOf(m: BackendMetrics): Counters {
  return Object.fromEntries(COUNTER_NAMES.map((name) => [name, m[name]])) as Counters;
}

function addInto(total: number[], part: readonly number[]): void {
  for (let i = 0; i < total.length; i++) total[i]! += part[i] ?? 0;
}
