/**
 * Starts lb from its building blocks: the pools, each with its control plane (which backends, and whether they are
 * up; pool-set.ts), the traffic side (forwarding in this process, or worker processes with --workers; a worker's own
 * side is worker.ts), and the listeners beside them (admin API, redirect). The pools' events are wired here, where
 * every part they reach exists.
 */
import type { Server } from "bun";
import type { AccessLog } from "../log/access-log.ts";
import type { ChallengeAnswers } from "../acme/challenges.ts";
import { type FileCertificate, certificateSummary, fileCertificates } from "../front/certificates.ts";
import { type AdminOptions, createAdminHandler } from "../admin/api.ts";
import { EventLog } from "../admin/events.ts";
import { startAdminServer } from "../admin/server.ts";
import { WorkerSet } from "../cluster/workers.ts";
import { type BackendSpec, hostInUrl } from "../config/backend-url.ts";
import { formatDuration } from "../config/duration.ts";
import { namedPools } from "../config/pools.ts";
import { type BackendDiff, type ReloadReport, RESTART_ONLY, changedSettings, effectiveConfig, restartPending } from "../config/reload.ts";
import { type Config, acmeNames, servesTls } from "../config/types.ts";
import { createAccessLog, createTracing, dataPlaneSettings } from "./configure.ts";
import type { Tracing } from "../tracing/tracing.ts";
import { descriptorLimit } from "../metrics/descriptors.ts";
import { DataPlane, type ServedPool } from "../proxy/data-plane.ts";
import { HookSet } from "../hooks/hook-set.ts";
import { loadHooks } from "../hooks/load.ts";
import { ListenError, ProxyListener, type TlsCertificates, claimPort, listen, readCertificates, serveHttpRedirect } from "../front/listeners.ts";
import { type Logger, consolaLevel } from "../log/log.ts";
import { Metrics } from "../metrics/metrics.ts";
import { plural } from "../pool/pool-log.ts";
import { describeStatuses } from "../pool/checker.ts";
import { Departures } from "../pool/departures.ts";
import type { Pool, PoolEvent } from "../pool/pool.ts";
import { Relay } from "../pool/relay.ts";
import { type PoolChange, PoolSet } from "./pool-set.ts";
import { TcpSide } from "./tcp-side.ts";

export { ListenError } from "../front/listeners.ts";

export interface RunningLb {
  readonly url: URL;
  readonly port: number;
  /** Where the admin API listens; null when it is off. */
  readonly adminUrl: URL | null;
  /** The pools by name; one, "default", when the config names none. */
  pools(): ReadonlyMap<string, Pool>;
  /** The default pool (or the first): the one pool of an lb without named pools. */
  readonly pool: Pool;
  /** This process's metrics (with --workers, the primary's view is in the admin API). */
  readonly metrics: Metrics;
  /** Requests waiting for a backend with room. */
  queued(): number;
  /** Reopens the access log file (after logrotate moved it). */
  reopenLogs(): void;
  /**
   * Applies a new config without a restart (see config/reload.ts for what changes): what changed in one line, and the
   * restart-only settings it changes, which keep their running values.
   */
  reload(next: Config): ReloadReport;
  /** The config in force: the last one applied, restart-only settings as they were at the start. */
  config(): Config;
  /** Stops accepting, lets in-flight requests finish within the drain timeout, then closes what is left. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  /** Where access lines go; null turns the access log off. Defaults to stdout when the config enables it. */
  accessLog?: AccessLog | null;
  /** Reloads the config file, for POST /api/reload; absent when lb runs without one. */
  reload?: AdminOptions["reload"];
}

/**
 * Starts lb. It binds first (so a port in use is reported at once), but holds requests until the first health-check
 * round is done, so the first request already avoids dead backends.
 */
export async function startLb(config: Config, options: StartOptions): Promise<RunningLb> {
  const { log } = options;
  // Loaded before anything binds: a broken hooks file is a startup error. With --workers each worker loads its own.
  const hooks = config.hooks ? await loadHooks(config.hooks) : null;
  const accessLog = options.accessLog !== undefined ? options.accessLog : createAccessLog(config, log);
  const metrics = new Metrics();
  const events = new EventLog();
  // This process's spans: its requests' (or with --workers, each worker has its own) and its [[tcp]] connections'.
  const tracing = createTracing(config, metrics, log);
  // A pool's events reach its control plane, then the traffic side (built next, from the pools, and connected then).
  const toTraffic = new Relay<[string, PoolEvent]>();
  const poolSet = new PoolSet(config, { metrics, log, events, onPoolEvent: toTraffic.emit });
  const pools = () => poolSet.pools();
  // --acme: the certificates it has stored are served from the start; those it obtains later reach the traffic side.
  // Loaded only then: the ACME library (axios, node-forge) would slow every other start by about 0.1 s.
  const acme = config.acme.length ? (await import("../acme/manager.ts")).acmeFor(config, log) : null;
  const stored = acme?.certificates() ?? [];
  const traffic =
    config.workers > 1
      ? servedByWorkers(config, pools, metrics, accessLog, log, stored)
      : servedHere(config, poolSet.served(), metrics, accessLog, log, hooks && new HookSet(hooks, log), false, stored, tracing);
  toTraffic.connect(traffic.onPoolEvent);
  const tcp = new TcpSide(metrics, accessLog, log, tracing?.tracer);
  let current = config;
  let ready = false;
  /** The certificate files served, as last read (the start, then each reload). */
  let files = fileCertificates(config);
  const sides = openSideListeners(config, traffic.port, log, acme?.challenges ?? null, {
    pools,
    events,
    metrics: traffic.metrics,
    queued: traffic.queued,
    clients: traffic.clients,
    stuckWorkers: traffic.stuckWorkers,
    certificates: () => [...files, ...(acme?.describe() ?? [])],
    tcp: tcp.service.stats,
    drainTimeoutMs: () => current.drainTimeout,
    config: () => current,
    reload: options.reload,
    ready: () => ready,
    closeOnFailure: traffic.close,
  });
  await poolSet.start();
  try {
    tcp.start(config, pools());
    await traffic.open();
  } catch (error) {
    void tcp.stop(0);
    poolSet.stopChecks();
    sides.stop();
    throw error;
  }
  ready = true;
  logListening(log, config, traffic.port, pools(), sides.adminUrl);
  acme?.start((certificates) => traffic.useAcmeCertificates(certificates));

  let stopping: Promise<void> | undefined;
  return {
    url: proxyUrl(config, traffic.port),
    port: traffic.port,
    adminUrl: sides.adminUrl,
    pools,
    get pool() {
      return poolSet.main;
    },
    metrics,
    queued: traffic.queued,
    config: () => current,
    reopenLogs: traffic.reopenLogs,
    reload(next) {
      const effective = effectiveConfig(current, next);
      // Both throw before changing anything when a file the new config names cannot be read.
      const change = poolSet.prepare(effective);
      const tcpChange = tcp.prepare(effective);
      traffic.reload(effective, next, change.served);
      acme?.follow(acmeNames(effective)); // "routes" follows the route table
      files = logCertificateFiles(log, fileCertificates(effective), files);
      const report = describeReload(current, next, change.apply(), log);
      const tcpReport = tcpChange.apply(pools(), change.served);
      if (tcpReport) report.summary += `; ${tcpReport}`;
      current = effective;
      return report;
    },
    stop: () =>
      (stopping ??= (async () => {
        ready = false; // a draining lb takes no new clients: readiness says so to whoever routes to it
        poolSet.close();
        acme?.stop();
        // The admin API stays up while requests drain: /readyz says 503, /metrics and /healthz still answer.
        await Promise.all([traffic.stop(current.drainTimeout), tcp.stop(current.drainTimeout)]);
        sides.stop();
        accessLog?.flush();
        await tracing?.flush(TRACE_FLUSH_MS);
      })()),
  };
}

/** Where requests are served: in this process, or in worker processes (--workers). */
export interface Traffic {
  readonly port: number;
  /** The metrics the admin API shows. */
  metrics(): Metrics;
  queued(): number;
  /** Client requests and tunnels open now. */
  clients(): number;
  /** Worker processes that have stopped answering (none in a single process: it would not be answering /readyz). */
  stuckWorkers(): readonly number[];
  onPoolEvent(poolName: string, event: PoolEvent): void;
  /** Serves these certificates that --acme obtained (from now on, for new connections). */
  useAcmeCertificates(certificates: TlsCertificates): void;
  /** Lets requests in, once the first health round is done. */
  open(): Promise<void>;
  /**
   * Applies the config and the pools a reload lists (new ones wait for their first health round, missing ones drain);
   * throws (a ConfigError) before changing anything when a file the new config names cannot be read.
   */
  reload(effective: Config, next: Config, pools: readonly ServedPool[]): void;
  reopenLogs(): void;
  /** Closes at once: the start failed further on. */
  close(): void;
  /** Stops accepting; in-flight requests finish within the drain timeout. */
  stop(drainTimeoutMs: number): Promise<void>;
}

/**
 * The forwarding happens in this process, behind the proxy listener: lb's single process, or a worker (`shared`: on
 * the port its primary claimed). It owns the hooks' file watcher from here on.
 */
export function servedHere(
  config: Config,
  pools: readonly ServedPool[],
  metrics: Metrics,
  accessLog: AccessLog | null,
  log: Logger,
  hooks: HookSet | null,
  shared = false,
  acmeCertificates: TlsCertificates = [],
  /** The process's tracing (null: off); a worker passes its own. */
  tracing: Tracing | null = null,
): Traffic {
  const data = new DataPlane(dataPlaneSettings(config), pools, metrics, accessLog, log, hooks, tracing?.tracer);
  let proxy: ProxyListener;
  try {
    proxy = new ProxyListener(config, log, data.handle, shared, acmeCertificates, (outcome) => metrics.count("proxyProtocol", outcome));
  } catch (error) {
    hooks?.stop();
    throw error;
  }
  return {
    port: proxy.port,
    metrics: () => metrics,
    queued: () => data.queued,
    clients: () => proxy.openRequests(),
    stuckWorkers: () => [],
    onPoolEvent: (poolName, event) => data.onPoolEvent(poolName, event),
    useAcmeCertificates: (certificates) => proxy.useAcmeCertificates(certificates),
    open: async () => data.open(),
    reload(effective, _next, nextPools) {
      proxy.renewCertificates(effective);
      data.reconfigure(dataPlaneSettings(effective), nextPools);
    },
    reopenLogs: () => accessLog?.reopen(),
    close: () => {
      proxy.close();
      hooks?.stop();
    },
    async stop(drainTimeoutMs) {
      hooks?.stop();
      await proxy.stop(drainTimeoutMs);
      data.close();
      if (shared) await tracing?.flush(TRACE_FLUSH_MS); // a worker's own; lb's one process flushes at its stop
    },
  };
}

/** At stop, the spans still queued get this long to reach the collector. */
const TRACE_FLUSH_MS = 2000;

/**
 * --workers N: this process claims the port and keeps the pool; the workers serve the shared port with the pool state
 * it pushes to them, and report their counts back (cluster/workers.ts, worker.ts).
 */
function servedByWorkers(
  config: Config,
  pools: () => ReadonlyMap<string, Pool>,
  metrics: Metrics,
  accessLog: AccessLog | null,
  log: Logger,
  acmeCertificates: TlsCertificates,
): Traffic {
  readCertificates(config); // the workers read them too: a missing file is reported once, here, before they start
  const port = claimPort(config.host, config.port);
  const workers = new WorkerSet(config, pools, metrics, log, (lines) => accessLog?.writeLines(lines), acmeCertificates);
  // No request is served here, so the pools alone keep a backend alive; its check counts go when it leaves them.
  const departures = new Departures(() => pools().values(), (url) => metrics.backends.delete(url));
  /** Reloads reach the workers in order, each once the pools it adds have had their first health round here. */
  let reloads = Promise.resolve();
  return {
    port,
    metrics: () => workers.metrics(),
    queued: () => workers.queued(),
    clients: () => workers.clients(),
    stuckWorkers: () => workers.stuck(),
    onPoolEvent: (_poolName, event) => {
      if (event.type === "removed") departures.left(event.backend.url);
      workers.pushPoolState();
    },
    useAcmeCertificates: (certificates) => workers.useAcmeCertificates(certificates),
    open: () =>
      workers.start(config.workers, { ...config, port }).catch((error) => {
        throw new ListenError("proxy", error);
      }),
    reload(effective, _next, served) {
      readCertificates(effective); // so a reload the workers would refuse is refused as a whole
      const firstRounds = served.flatMap((pool) => (pool.checked ? [pool.checked] : []));
      reloads = reloads
        .then(() => Promise.all(firstRounds))
        .then(() => {
          // Restart-only settings as running: a worker restarted later starts like its siblings. The state follows
          // at once, so a pool the reload added has its backends before it takes requests.
          workers.reload(effective);
          workers.pushPoolState();
        });
    },
    reopenLogs() {
      accessLog?.reopen();
      workers.reopenLogs();
    },
    close: () => {},
    stop: (drainTimeoutMs) => workers.stop(drainTimeoutMs),
  };
}

/** After a reload re-read them: each certificate file's serial and not-after, and whether it is a new certificate. */
function logCertificateFiles(log: Logger, read: FileCertificate[], before: readonly FileCertificate[]): FileCertificate[] {
  for (const { source, facts } of read) {
    const previous = before.find((known) => known.source.path === source.path)?.facts;
    log.info(`TLS certificate ${source.path} re-read: ${certificateSummary(facts)} (${previous?.serial === facts.serial ? "unchanged" : "new"})`);
  }
  return read;
}

/** Shorter admin tokens get a warning: 16 random hex characters are 64 bits. */
const MIN_TOKEN_LENGTH = 16;

interface AdminWiring extends Pick<AdminOptions, "config" | "reload" | "ready" | "clients" | "pools" | "stuckWorkers" | "certificates" | "tcp"> {
  events: EventLog;
  metrics: () => Metrics;
  queued: () => number;
  drainTimeoutMs: () => number;
  /** Closes what the caller opened already, when one of these cannot bind. */
  closeOnFailure: () => void;
}

/** The listeners beside the proxy one, each when the config asks for it: the HTTP → HTTPS redirect and the admin API. */
function openSideListeners(config: Config, proxyPort: number, log: Logger, challenges: ChallengeAnswers | null, wiring: AdminWiring) {
  const { closeOnFailure, ...sources } = wiring;
  const open: Server<undefined>[] = [];
  const stop = () => {
    for (const server of open) void server.stop(true);
  };
  try {
    if (config.httpRedirectPort) open.push(serveHttpRedirect(config, proxyPort, challenges));
    if (config.backendInsecure) log.warn("--backend-insecure: https:// backends' certificates are NOT verified");
    if (config.admin && config.adminToken && config.adminToken.length < MIN_TOKEN_LENGTH) {
      log.warn(`the admin token has only ${config.adminToken.length} characters; use ${MIN_TOKEN_LENGTH} or more (openssl rand -hex 16)`);
    }
    const handler = config.admin && createAdminHandler({ ...sources, log, token: config.adminToken });
    const admin = config.admin && handler ? listen("admin", () => startAdminServer(config.admin!, handler, log)) : null;
    if (admin) open.push(admin);
    return { adminUrl: admin && new URL(`http://${hostInUrl(config.admin!.host)}:${admin.port}`), stop };
  } catch (error) {
    stop();
    closeOnFailure();
    throw error;
  }
}

/**
 * What a reload changed, in one line (backends of kept pools, pools that came and went, what waits for a restart); the
 * log level follows now, and what only a restart changes gets a warning of its own.
 */
function describeReload(current: Config, next: Config, { diffs, added, retired }: ReturnType<PoolChange["apply"]>, log: Logger): ReloadReport {
  log.level = consolaLevel(next.logLevel);
  const pending = restartPending(current, next);
  const waiting = pending.map((p) => p.change).join(", ");
  if (pending.length) log.warn(`config reload: ${waiting} ${pending.length === 1 ? "waits" : "wait"} for a restart; until then lb keeps the running value`);
  const applied = changedSettings(current, next).filter((name) => !RESTART_ONLY.has(name));
  if (!Bun.deepEquals(current.pools, next.pools)) applied.push("pools");
  if (!Bun.deepEquals(current.routes, next.routes)) applied.push("routes");
  if (!Bun.deepEquals(current.tcp, next.tcp)) applied.push("tcp");
  const count = (key: keyof BackendDiff) => diffs.reduce((sum, diff) => sum + diff[key].length, 0);
  const summary =
    `config reloaded: ${count("added")} backend(s) added, ${count("removed")} draining out, ${count("reweighted")} reweighted` +
    (added.length ? `; pools added: ${added.join(", ")}` : "") +
    (retired.length ? `; pools draining out: ${retired.join(", ")}` : "") +
    (applied.length ? `; changed: ${applied.join(", ")}` : "") +
    (pending.length ? `; waiting for a restart: ${waiting}` : "");
  return { summary, restartNeeded: pending.map((p) => p.setting) };
}

function proxyUrl(config: Config, port: number): URL {
  return new URL(`${servesTls(config) ? "https" : "http"}://${hostInUrl(config.host)}:${port}`);
}

function logListening(log: Logger, config: Config, port: number, pools: ReadonlyMap<string, Pool>, adminUrl: URL | null): void {
  const fds = descriptorLimit();
  const pooled = (pool: Pool) => `${plural(pool.backends.length, "backend")} (${pool.available().length} healthy)`;
  const [only] = namedPools(config);
  const own = only!.config; // with one pool, its settings (a lone [pools.NAME] sets its own)
  const target =
    pools.size === 1
      ? `${pooled(pools.get(only!.name)!)}: ${own.backends.map(describeBackend).join(", ")}` +
        ` · policy ${own.policy} · health ${own.healthPath ? `${own.healthMethod} ${own.healthPath} expects ${describeStatuses(own.healthStatus)}` : "TCP connect"}` +
        ` every ${formatDuration(own.healthInterval)}`
      : `pools ${[...pools].map(([name, pool]) => `${name}: ${pooled(pool)}`).join(", ")} · ${plural(config.routes.length, "route")}`;
  log.info(
    `lb listening on ${proxyUrl(config, port).origin} → ${target} · admin ${adminUrl ? adminUrl.origin : "off"}` +
      (config.acceptProxy ? " · PROXY protocol header required" : "") +
      (config.hooks ? ` · hooks ${config.hooks}` : "") +
      (config.workers > 1 ? ` · ${config.workers} workers` : "") +
      (fds ? ` · fd limit ${fds}` : ""),
  );
  // Each request holds two descriptors (the client's connection and the backend's), four behind --accept-proxy's relay
  // (its loopback pair); idle keep-alives hold more.
  const perRequest = config.acceptProxy ? 4 : 2;
  const requestsAtOnce = fds ? Math.floor((fds - RESERVED_DESCRIPTORS) / perRequest) : Number.POSITIVE_INFINITY;
  if (config.maxConnections > 0 && requestsAtOnce < config.maxConnections / 2) {
    log.warn(
      `the file descriptor limit (${fds}) allows about ${requestsAtOnce} requests at once, under half of ` +
        `--max-connections ${config.maxConnections}: raise it (ulimit -n, systemd LimitNOFILE) or lower --max-connections`,
    );
  }
}

/** Descriptors lb needs besides requests: listeners, logs, health checks, Bun's own. */
const RESERVED_DESCRIPTORS = 64;


function describeBackend({ url, weight, resolve }: BackendSpec): string {
  const notes = [...(weight === 1 ? [] : [`weight ${weight}`]), ...(resolve ? ["resolved from DNS"] : [])];
  return notes.length ? `${url} (${notes.join(", ")})` : url;
}
