/** The live view the dashboard polls (GET /api/stats): per-backend rates, latency and history, pool totals, events. */
import { VERSION_LINE } from "../version.ts";
import type { Backend } from "../pool/backend.ts";
import { type Metrics, type Second, mergeBuckets, quantile } from "../metrics/metrics.ts";
import { type CertificateStatus, certificateJson } from "../front/certificates.ts";
import type { EventLog } from "./events.ts";
import { type TcpStats, tcpStatsJson } from "../l4/tcp-stats.ts";
import { backendSummary } from "./views.ts";

/** Seconds that rates and percentiles are averaged over. */
export const RATE_WINDOW_SECONDS = 10;
/** Seconds of history in each backend's chart series. */
export const SERIES_SECONDS = 120;

export interface StatsSources {
  /** The backends of each pool, by pool name. */
  pools: ReadonlyMap<string, { readonly backends: readonly Backend[] }>;
  metrics: Metrics;
  events: EventLog;
  queued: number;
  /** The certificates lb serves (files and --acme): the dashboard shows when each expires. */
  certificates: readonly CertificateStatus[];
  /** The [[tcp]] listeners' counts. */
  tcp?: TcpStats;
}

const ms = (seconds: number | null) => (seconds === null ? null : Math.round(seconds * 1000 * 10) / 10);
const round = (n: number) => Math.round(n * 100) / 100;

function rates(seconds: readonly Second[]) {
  const requests = seconds.reduce((sum, s) => sum + s.requests, 0);
  const errors = seconds.reduce((sum, s) => sum + s.errors, 0);
  const buckets = mergeBuckets(seconds);
  return {
    rps: round(requests / seconds.length),
    errorRate: requests ? round(errors / requests) : 0,
    p50Ms: ms(quantile(buckets, 0.5)),
    p99Ms: ms(quantile(buckets, 0.99)),
  };
}

export function statsSnapshot({ pools, metrics, events, queued, certificates, tcp }: StatsSources, nowMs = Date.now()) {
  const members = [...pools].flatMap(([pool, { backends }]) => backends.map((backend) => ({ pool, backend })));
  const backends = members.map((member) => member.backend);
  const rows = members.map(({ pool, backend }) => {
    const m = metrics.of(backend.url);
    const history = m.lastSeconds(SERIES_SECONDS, nowMs);
    return {
      ...backendSummary(backend),
      pool,
      lastCheck: backend.lastCheck && { ok: backend.lastCheck.ok, reason: backend.lastCheck.reason },
      ...rates(history.slice(-RATE_WINDOW_SECONDS)),
      series: {
        rps: history.map((s) => s.requests),
        p99Ms: history.map((s) => ms(quantile(s.buckets, 0.99))),
      },
    };
  });
  const recent = backends.flatMap((b) => metrics.of(b.url).lastSeconds(RATE_WINDOW_SECONDS, nowMs));
  const poolRates = rates(recent.length ? recent : [{ requests: 0, errors: 0, buckets: [] }]);
  return {
    time: new Date(nowMs).toISOString(),
    version: VERSION_LINE,
    uptimeSeconds: Math.round((nowMs - metrics.startedAt) / 1000),
    pool: {
      backends: backends.length,
      healthy: rows.filter((r) => r.state === "healthy").length,
      inflight: backends.reduce((sum, b) => sum + b.inflight, 0),
      queued,
      // The per-backend windows add up: the pool's request rate is their sum, not their average.
      rps: round(rows.reduce((sum, r) => sum + r.rps, 0)),
      errorRate: poolRates.errorRate,
    },
    /** Per pool: its backends, how many are healthy, its request rate. */
    pools: [...pools.keys()].map((name) => {
      const own = rows.filter((row) => row.pool === name);
      return { name, backends: own.length, healthy: own.filter((r) => r.state === "healthy").length, rps: round(own.reduce((sum, r) => sum + r.rps, 0)) };
    }),
    backends: rows,
    events: events.recent(),
    certificates: certificates.map(certificateJson),
    /** Per [[tcp]] listener: connections, open now, bytes each way, refused. */
    tcp: tcp ? tcpStatsJson(tcp) : [],
  };
}
