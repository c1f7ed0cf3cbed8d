/**
 * The admin API: read the pool, and change it while lb runs (add, weight, drain, remove, disable, enable). Every
 * change is logged with who asked (client address) and what. It only touches the pool; the listener lives in start.ts.
 */
import { WEIGHT_PROBLEM, checkBackendUrl, parseWeight } from "../config/backend-url.ts";
import { type CertificateStatus, certificateJson } from "../front/certificates.ts";
import type { ReloadReport } from "../config/reload.ts";
import type { Config } from "../config/types.ts";
import { configView } from "../config/view.ts";
import { parseDuration } from "../config/duration.ts";
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { TcpStats } from "../l4/tcp-stats.ts";
import { renderPrometheus } from "../metrics/prometheus.ts";
import { drainAndRemove } from "../pool/drain.ts";
import { type Pool, PoolConflict } from "../pool/pool.ts";
import { bearerMatches } from "./auth.ts";
import { isJson, refusal } from "./guard.ts";
import dashboardPage from "./dashboard.html" with { type: "text" };
import type { EventLog } from "./events.ts";
import { statsSnapshot } from "./stats.ts";
import { backendJson } from "./views.ts";

export interface AdminOptions {
  /** The pools by name (one, "default", when the config names none). */
  pools: () => ReadonlyMap<string, Pool>;
  /** The metrics to show (with --workers, summed over the workers when asked). */
  metrics: () => Metrics;
  events: EventLog;
  /** Requests waiting for a backend with room (--max-inflight). */
  queued: () => number;
  /** Client requests and WebSocket tunnels open now. */
  clients: () => number;
  log: Logger;
  /** Empty: no token needed (loopback only, enforced at startup). */
  token: string;
  /** How long DELETE waits for in-flight requests before removing anyway (overridable with ?timeout=). */
  drainTimeoutMs: () => number;
  /** The config in force (GET /api/config). */
  config: () => Config;
  /** Whether lb takes requests: listening, and its first health round done (GET /readyz). */
  ready: () => boolean;
  /** Workers (--workers) that have stopped answering their primary, by number: lb is not ready while one is. */
  stuckWorkers: () => readonly number[];
  /** Reloads the config file (POST /api/reload); absent when lb was started without one. */
  reload?: (why: string) => Promise<ReloadOutcome>;
  /** The certificates served, from files and --acme (GET /api/certificates, /metrics). */
  certificates: () => CertificateStatus[];
  /** The [[tcp]] listeners' counts (/metrics, the dashboard). */
  tcp?: TcpStats;
}

/**
 * What a reload did: applied (the one-line summary of what changed, and the restart-only settings it changed, which
 * keep their running values), or refused (why; the old config stays).
 */
export type ReloadOutcome = ({ applied: true } & ReloadReport) | { applied: false; error: string };

/** `holdOpen` lifts the connection's idle timeout, for calls that wait (a drain). */
export type AdminHandler = (request: Request, clientIp: string, holdOpen: () => void) => Promise<Response>;

/** What each POST /api/backends/<id>/<action> sets. */
const ADMIN_ACTIONS = { drain: "draining", disable: "disabled", enable: "active" } as const;

/** The page, inlined into the binary at build time (the text loader gives a string; bun-types assume a bundle). */
const DASHBOARD_HTML = dashboardPage as unknown as string;

const json = (body: unknown, status = 200) => Response.json(body, { status, headers: { "cache-control": "no-store" } });
const problem = (status: number, error: string) => json({ error }, status);


export function createAdminHandler(options: AdminOptions): AdminHandler {
  const { log } = options;
  const changed = (ip: string, what: string) => log.info(`admin ${ip}: ${what}`);
  const lastRefusal = new Map<string, number>();
  /** At most one line a minute per client, so refused calls cannot flood the log. */
  const logRefusal = (ip: string, what: string) => {
    const now = Date.now();
    if ((lastRefusal.get(ip) ?? 0) >= now - 60_000) return;
    if (lastRefusal.size > 1000) lastRefusal.clear();
    lastRefusal.set(ip, now);
    log.warn(`admin ${ip}: refused ${what} (further refusals from it logged at most once a minute)`);
  };

  return async (request, ip, holdOpen) => {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const refused = refusal(request, options.token !== "");
    if (refused) {
      logRefusal(ip, `${request.method} ${path}: ${refused.error}`);
      return problem(refused.status, refused.error);
    }
    if (path === "/" && request.method === "GET") {
      return new Response(DASHBOARD_HTML, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
    }
    if (path === "/healthz") return json({ status: "ok" });
    // Ready means lb can answer: it listens and its first health round is done. No healthy backend does not make
    // it unready: every replica would leave the Service at once, and clients would meet refused connections instead
    // of lb's 503 with Retry-After. lb_backend_up and /api/stats show that case.
    // A stuck worker (a hook in an endless loop) does: the kernel still gives it its share of new connections, which
    // hang until the primary replaces it.
    if (path === "/readyz") {
      const stuckWorkers = options.stuckWorkers();
      const ready = options.ready() && stuckWorkers.length === 0;
      const healthy = [...options.pools().values()].reduce((sum, pool) => sum + pool.available().length, 0);
      return json({ ready, healthy, ...(stuckWorkers.length ? { stuckWorkers } : {}) }, ready ? 200 : 503);
    }
    if (!path.startsWith("/api/") && path !== "/metrics") return problem(404, `no such endpoint: ${path}`);
    if (options.token && !bearerMatches(request.headers.get("authorization"), options.token)) {
      logRefusal(ip, `${request.method} ${path}: missing or wrong token`);
      return json({ error: "missing or wrong token: send Authorization: Bearer <token>" }, 401);
    }
    const pools = options.pools();
    const sources = () => ({
      pools,
      metrics: options.metrics(),
      events: options.events,
      queued: options.queued(),
      clients: options.clients(),
      certificates: options.certificates(),
      tcp: options.tcp,
    });
    if (path === "/metrics") {
      return new Response(renderPrometheus(sources()), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
    }
    if (path === "/api/stats") return json(statsSnapshot(sources()));
    if (path === "/api/config") return json(configView(options.config()));
    if (path === "/api/certificates") return json({ certificates: options.certificates().map(certificateJson) });
    if (path === "/api/reload") {
      if (request.method !== "POST") return problem(405, "use POST on /api/reload");
      if (!options.reload) return problem(409, "lb was started without --config: there is no file to reload");
      const outcome = await options.reload(`POST /api/reload from ${ip}`);
      return json(outcome, outcome.applied ? 200 : 422);
    }

    if (path === "/api/backends") {
      if (request.method === "GET") {
        const only = url.searchParams.get("pool");
        if (only !== null && !pools.has(only)) return problem(404, `no pool ${only}; the pools are ${[...pools.keys()].join(", ")}`);
        const listed = [...pools].filter(([name]) => only === null || name === only);
        return json({ backends: listed.flatMap(([name, pool]) => pool.backends.map((backend) => backendJson(backend, name))) });
      }
      if (request.method !== "POST") return problem(405, "use GET or POST on /api/backends");
      if (!isJson(request)) return problem(415, "send the body with Content-Type: application/json");
      const body = (await request.json().catch(() => null)) as { url?: unknown; weight?: unknown; pool?: unknown } | null;
      if (!body || typeof body.url !== "string") return problem(400, 'send JSON like {"url": "http://10.0.0.5:8080", "weight": 1}');
      const checked = checkBackendUrl(body.url, { weight: body.weight });
      if ("error" in checked) return problem(400, checked.error);
      if (checked.spec.resolve) return problem(400, "resolve backends come from the config file (DNS discovery); add an address here");
      const target = poolFor(pools, body.pool);
      if (typeof target === "string") return problem(400, target);
      const [poolName, pool] = target;
      const elsewhere = findBackend(pools, checked.spec.url);
      if (elsewhere && elsewhere.pool !== pool) return problem(409, `${checked.spec.url} is in pool ${elsewhere.poolName} already; a backend belongs to one pool`);
      try {
        const backend = pool.add(checked.spec);
        changed(ip, `added backend ${backend.url} (weight ${backend.weight}) to pool ${poolName}`);
        return json(backendJson(backend, poolName), 201);
      } catch (error) {
        if (error instanceof PoolConflict) return problem(409, error.message);
        throw error;
      }
    }

    const match = /^\/api\/backends\/([^/]+)(?:\/(drain|disable|enable))?$/.exec(path);
    if (!match) return problem(404, `no such endpoint: ${path}`);
    let id: string;
    try {
      id = decodeURIComponent(match[1]!);
    } catch {
      return problem(400, `"${match[1]}" is not a valid backend id`);
    }
    const found = findBackend(pools, id);
    if (!found) return problem(404, `no backend ${id}; GET /api/backends lists them`);
    const { pool, poolName, backend } = found;
    const action = match[2];

    if (!action) {
      if (request.method === "GET") return json(backendJson(backend, poolName));
      if (request.method === "PATCH") {
        if (!isJson(request)) return problem(415, "send the body with Content-Type: application/json");
        const body = (await request.json().catch(() => null)) as { weight?: unknown } | null;
        const weight = parseWeight(body?.weight);
        if (weight === null) return problem(400, `send JSON like {"weight": 5}: ${WEIGHT_PROBLEM}`);
        pool.setWeight(backend, weight);
        changed(ip, `backend ${backend.url} weight is now ${weight}`);
        return json(backendJson(backend, poolName));
      }
      if (request.method !== "DELETE") return problem(405, "use GET, PATCH or DELETE on a backend");
      const given = url.searchParams.get("timeout");
      const timeoutMs = given === null ? options.drainTimeoutMs() : parseDuration(given);
      if (timeoutMs === null) return problem(400, `timeout "${given}" is not a duration; write 250ms, 10s or 1m`);
      holdOpen(); // a drain may take longer than the listener's idle timeout
      changed(ip, `removing backend ${backend.url} (draining, at most ${timeoutMs}ms)`);
      const left = await drainAndRemove(pool, backend, timeoutMs);
      if (left === null) return problem(409, `${backend.name} was enabled again while it drained; it stays`);
      changed(ip, `removed backend ${backend.url}${left ? ` with ${left} request(s) still in flight` : ""}`);
      return json({ removed: backend.name, inflightAtRemoval: left });
    }
    if (request.method !== "POST") return problem(405, `use POST on ${path}`);
    const next = ADMIN_ACTIONS[action as keyof typeof ADMIN_ACTIONS];
    pool.setAdminState(backend, next);
    changed(ip, `backend ${backend.url} is now ${next}`);
    return json(backendJson(backend, poolName));
  };
}

/** The backend with this name or URL, in whichever pool has it (a backend belongs to one pool). */
function findBackend(pools: ReadonlyMap<string, Pool>, id: string) {
  for (const [poolName, pool] of pools) {
    const backend = pool.find(id);
    if (backend) return { pool, poolName, backend };
  }
  return undefined;
}

/** The pool a POST names, or the one pool there is; else what to send instead. */
function poolFor(pools: ReadonlyMap<string, Pool>, name: unknown): [string, Pool] | string {
  const names = [...pools.keys()].join(", ");
  if (name === undefined) {
    if (pools.size === 1) return [...pools][0]!;
    return `lb has several pools (${names}): say which, e.g. {"url": "http://10.0.0.5:8080", "pool": "${[...pools.keys()][0]}"}`;
  }
  const pool = typeof name === "string" ? pools.get(name) : undefined;
  return pool ? [name as string, pool] : `no pool ${JSON.stringify(name)}; the pools are ${names}`;
}
