/**
 * Starts lb from its building blocks: the control plane (which backends, and whether they are up), the traffic side
 * (forwarding in this process, or worker processes with --workers; a worker's own side is worker.ts), and the
 * listeners beside them (admin API, redirect). The pool's events are wired here, where every part they reach exists.
 */
import type { Server } from "bun";
import type { AccessLog } from "./access-log.ts";
import { type AdminOptions, createAdminHandler } from "./admin/api.ts";
import type { EventLog } from "./admin/events.ts";
import { startAdminServer } from "./admin/server.ts";
import { WorkerSet } from "./cluster/workers.ts";
import { type BackendSpec, hostInUrl } from "./config/backend-url.ts";
import { formatDuration } from "./config/duration.ts";
import { type BackendDiff, RESTART_ONLY, changedSettings, effectiveConfig } from "./config/reload.ts";
import type { Config } from "./config/settings.ts";
import { createAccessLog, poolRules, upstreamTls } from "./configure.ts";
import { ControlPlane, staticBackends } from "./control-plane.ts";
import { descriptorLimit } from "./descriptors.ts";
import { DataPlane } from "./data-plane.ts";
import { ListenError, ProxyListener, claimPort, listen, readCertificates, serveHttpRedirect } from "./listeners.ts";
import { type Logger, consolaLevel } from "./log.ts";
import { Metrics } from "./metrics/metrics.ts";
import { plural } from "./pool-log.ts";
import { describeStatuses } from "./pool/checker.ts";
import { Pool, type PoolEvent } from "./pool/pool.ts";
import type { UpstreamTls } from "./upstream/client.ts";

export { ListenError } from "./listeners.ts";

export interface RunningLb {
  readonly url: URL;
  readonly port: number;
  /** Where the admin API listens; null when it is off. */
  readonly adminUrl: URL | null;
  readonly pool: Pool;
  /** This process's metrics (with --workers, the primary's view is in the admin API). */
  readonly metrics: Metrics;
  /** Requests waiting for a backend with room. */
  queued(): number;
  /** Reopens the access log file (after logrotate moved it). */
  reopenLogs(): void;
  /** Applies a new config without a restart (see config/reload.ts for what changes); returns a one-line summary. */
  reload(next: Config): string;
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
  const accessLog = options.accessLog !== undefined ? options.accessLog : createAccessLog(config, log);
  const metrics = new Metrics();
  // What a change in the pool sets off: log lines and checks (control), then the requests it concerns (traffic).
  const pool: Pool = new Pool(staticBackends(config), {
    ...poolRules(config),
    listener: (event) => {
      control.onPoolEvent(event);
      traffic.onPoolEvent(event);
    },
  });
  const tlsToBackends = upstreamTls(config);
  const control = new ControlPlane(pool, config, tlsToBackends, metrics, log);
  const traffic =
    config.workers > 1
      ? servedByWorkers(config, pool, metrics, accessLog, log)
      : servedHere(config, pool, tlsToBackends, metrics, accessLog, log);
  let current = config;
  let ready = false;
  const sides = openSideListeners(config, traffic.port, log, {
    pool,
    events: control.events,
    metrics: traffic.metrics,
    queued: traffic.queued,
    clients: traffic.clients,
    drainTimeoutMs: () => current.drainTimeout,
    config: () => current,
    reload: options.reload,
    ready: () => ready,
    closeOnFailure: traffic.close,
  });
  await control.start();
  try {
    await traffic.open();
  } catch (error) {
    control.stop();
    sides.stop();
    throw error;
  }
  ready = true;
  logListening(log, config, traffic.port, pool, sides.adminUrl);

  let stopping: Promise<void> | undefined;
  return {
    url: proxyUrl(config, traffic.port),
    port: traffic.port,
    adminUrl: sides.adminUrl,
    pool,
    metrics,
    queued: traffic.queued,
    config: () => current,
    reopenLogs: traffic.reopenLogs,
    reload(next) {
      // First the files a reload reads: one that cannot be read rejects the whole reload before anything changed.
      const nextTls = upstreamTls(next);
      const effective = effectiveConfig(current, next);
      traffic.reload(effective, next, nextTls);
      const diff = control.reload(effective, nextTls);
      pool.reconfigure(poolRules(effective));
      const summary = describeReload(current, next, diff, log);
      current = effective;
      return summary;
    },
    stop: () =>
      (stopping ??= (async () => {
        ready = false; // a draining lb takes no new clients: readiness says so to whoever routes to it
        control.stop();
        pool.close();
        // The admin API stays up while requests drain: /readyz says 503, /metrics and /healthz still answer.
        await traffic.stop(current.drainTimeout);
        sides.stop();
        accessLog?.flush();
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
  onPoolEvent(event: PoolEvent): void;
  /** Lets requests in, once the first health round is done. */
  open(): Promise<void>;
  /** Throws (a ConfigError) before changing anything when a file the new config names cannot be read. */
  reload(effective: Config, next: Config, tlsToBackends: UpstreamTls | undefined): void;
  reopenLogs(): void;
  /** Closes at once: the start failed further on. */
  close(): void;
  /** Stops accepting; in-flight requests finish within the drain timeout. */
  stop(drainTimeoutMs: number): Promise<void>;
}

/**
 * The forwarding happens in this process, behind the proxy listener: lb's single process, or a worker (`shared`: on
 * the port its primary claimed).
 */
export function servedHere(
  config: Config,
  pool: Pool,
  tlsToBackends: UpstreamTls | undefined,
  metrics: Metrics,
  accessLog: AccessLog | null,
  log: Logger,
  shared = false,
): Traffic {
  const data = new DataPlane(pool, config, tlsToBackends, metrics, accessLog, log);
  const proxy = new ProxyListener(config, log, data.handle, shared);
  return {
    port: proxy.port,
    metrics: () => metrics,
    queued: () => data.queued,
    clients: () => proxy.openRequests(),
    onPoolEvent: (event) => data.onPoolEvent(event),
    open: async () => data.open(),
    reload(effective, _next, nextTls) {
      proxy.renewCertificates(effective);
      data.reconfigure(effective, nextTls);
    },
    reopenLogs: () => accessLog?.reopen(),
    close: () => proxy.close(),
    async stop(drainTimeoutMs) {
      await proxy.stop(drainTimeoutMs);
      data.close();
    },
  };
}

/**
 * --workers N: this process claims the port and keeps the pool; the workers serve the shared port with the pool state
 * it pushes to them, and report their counts back (cluster/workers.ts, worker.ts).
 */
function servedByWorkers(config: Config, pool: Pool, metrics: Metrics, accessLog: AccessLog | null, log: Logger): Traffic {
  readCertificates(config); // the workers read them too: a missing file is reported once, here, before they start
  const port = claimPort(config.host, config.port);
  const workers = new WorkerSet(config, pool, metrics, log, (lines) => accessLog?.writeLines(lines));
  return {
    port,
    metrics: () => workers.metrics(),
    queued: () => workers.queued(),
    clients: () => workers.clients(),
    onPoolEvent: () => workers.pushPoolState(),
    open: () =>
      workers.start(config.workers, { ...config, port }).catch((error) => {
        throw new ListenError("proxy", error);
      }),
    reload(effective, next) {
      readCertificates(effective); // so a reload the workers would refuse is refused as a whole
      workers.reload(effective); // restart-only settings as running: a worker restarted later starts like its siblings
    },
    reopenLogs() {
      accessLog?.reopen();
      workers.reopenLogs();
    },
    close: () => {},
    stop: (drainTimeoutMs) => workers.stop(drainTimeoutMs),
  };
}

/** Shorter admin tokens get a warning: 16 random hex characters are 64 bits. */
const MIN_TOKEN_LENGTH = 16;

interface AdminWiring extends Pick<AdminOptions, "config" | "reload" | "ready" | "clients"> {
  pool: Pool;
  events: EventLog;
  metrics: () => Metrics;
  queued: () => number;
  drainTimeoutMs: () => number;
  /** Closes what the caller opened already, when one of these cannot bind. */
  closeOnFailure: () => void;
}

/** The listeners beside the proxy one, each when the config asks for it: the HTTP → HTTPS redirect and the admin API. */
function openSideListeners(config: Config, proxyPort: number, log: Logger, wiring: AdminWiring) {
  const { closeOnFailure, ...sources } = wiring;
  const open: Server<undefined>[] = [];
  const stop = () => {
    for (const server of open) void server.stop(true);
  };
  try {
    if (config.httpRedirectPort) open.push(serveHttpRedirect(config, proxyPort));
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

/** What a reload changed, in one line; the log level follows now, and what only a restart changes gets a warning. */
function describeReload(current: Config, next: Config, diff: BackendDiff, log: Logger): string {
  log.level = consolaLevel(next.logLevel);
  const changed = changedSettings(current, next);
  const needRestart = changed.filter((name) => RESTART_ONLY.has(name));
  if (needRestart.length) log.warn(`config reload: ${needRestart.join(", ")} change only on restart; the running values stay`);
  const applied = changed.filter((name) => !RESTART_ONLY.has(name));
  return (
    `config reloaded: ${diff.added.length} backend(s) added, ${diff.removed.length} draining out, ` +
    `${diff.reweighted.length} reweighted` +
    (applied.length ? `; changed: ${applied.join(", ")}` : "")
  );
}

function proxyUrl(config: Config, port: number): URL {
  return new URL(`${config.tlsCert ? "https" : "http"}://${hostInUrl(config.host)}:${port}`);
}

function logListening(log: Logger, config: Config, port: number, pool: Pool, adminUrl: URL | null): void {
  const fds = descriptorLimit();
  log.info(
    `lb listening on ${proxyUrl(config, port).origin} → ${plural(pool.backends.length, "backend")} (${pool.available().length} healthy): ` +
      `${config.backends.map(describeBackend).join(", ")}` +
      ` · policy ${config.policy} · health ${config.healthMethod} ${config.healthPath} expects ${describeStatuses(config.healthStatus)}` +
      ` every ${formatDuration(config.healthInterval)} · admin ${adminUrl ? adminUrl.origin : "off"}` +
      (config.workers > 1 ? ` · ${config.workers} workers` : "") +
      (fds ? ` · fd limit ${fds}` : ""),
  );
  // Each request holds two descriptors (the client's connection and the backend's); idle keep-alives hold more.
  const requestsAtOnce = fds ? Math.floor((fds - RESERVED_DESCRIPTORS) / 2) : Number.POSITIVE_INFINITY;
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
