/** Wires the parts together: pool + health checks + policy + forwarder behind Bun.serve, and a bounded shutdown. */
import { type BackendSpec, hostInUrl } from "./config/backend-url.ts";
import { checkSettings, forwarderTuning, poolRules, upstreamSettings, upstreamTls } from "./configure.ts";
import { formatDuration } from "./config/duration.ts";
import { DnsDiscovery, dnsLookup } from "./pool/discovery.ts";
import { drainAndRemove } from "./pool/drain.ts";
import { RESTART_ONLY, changedSettings, diffBackends, effectiveConfig } from "./config/reload.ts";
import type { Config } from "./config/settings.ts";
import { AccessLog, FileSink, type Sink } from "./access-log.ts";
import { type Logger, consolaLevel } from "./log.ts";
import { HealthChecker, describeStatuses } from "./pool/checker.ts";
import { type PoolEvent, Pool } from "./pool/pool.ts";
import { describeState } from "./pool/backend.ts";
import { EventLog } from "./admin/events.ts";
import { Metrics } from "./metrics/metrics.ts";
import { Forwarder } from "./proxy/forward.ts";
import { type ClientConnection, pathOf } from "./proxy/trip.ts";
import { readFileSync } from "node:fs";
import { ConfigError } from "./config/load.ts";
import { errorResponse } from "./proxy/responses.ts";
import { type Tunnel, tunnelHandlers } from "./proxy/websocket.ts";
import type { Server } from "bun";
import { createAdminHandler } from "./admin/api.ts";
import { startAdminServer } from "./admin/server.ts";
import { type BackendState, type ToPrimary, applyPoolState } from "./cluster/sync.ts";
import { WorkerSet } from "./cluster/workers.ts";
import { HttpClient } from "./upstream/http-client.ts";
import { settlesWithin } from "./deadline.ts";

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
  /** In a worker: makes the pool what the primary says (its changes are not echoed back). */
  adoptPoolState(state: readonly BackendState[]): void;
  /** Applies a new config without a restart (see config/reload.ts for what changes); returns a one-line summary. */
  reload(next: Config): string;
  /** Stops accepting, lets in-flight requests finish within the drain timeout, then closes what is left. */
  stop(): Promise<void>;
}

/** A listener could not bind; `listener` says which, `cause` has the system error (code EADDRINUSE...). */
export class ListenError extends Error {
  override name = "ListenError";
  readonly code: string | undefined;

  constructor(
    readonly listener: "proxy" | "admin" | "redirect",
    cause: unknown,
  ) {
    super(`${listener} listener: ${(cause as Error).message}`, { cause });
    this.code = (cause as { code?: string }).code;
  }
}

export interface StartOptions {
  log: Logger;
  /** Where access lines go; null turns the access log off. Defaults to stdout when the config enables it. */
  accessLog?: AccessLog | null;
  /** Set in a worker process (--workers): the pool as the primary last described it, and the way to tell it news. */
  primary?: PrimaryLink;
}

export interface PrimaryLink {
  state: readonly BackendState[];
  send(message: ToPrimary): void;
}

/**
 * Starts lb. It binds first (so a port in use is reported at once), but holds requests until the first health-check
 * round is done, so the first request already avoids dead backends.
 */
export async function startLb(config: Config, options: StartOptions): Promise<RunningLb> {
  const { log, primary } = options;
  const accessLog = options.accessLog !== undefined ? options.accessLog : createAccessLog(config, log);
  const metrics = new Metrics();
  const events = new EventLog();
  /** True while a worker applies its primary's state: those changes are the primary's news, not the worker's. */
  let adopting = false;
  /** Set below, once every part a pool event reaches exists. */
  let onPoolEvent: (event: PoolEvent) => void = () => {};
  const pool: Pool = new Pool(primary ? [] : staticBackends(config), { ...poolRules(config), listener: (event) => onPoolEvent(event) });
  /** A worker's own findings: a refused connection goes up (the primary marks it down for all); ejections are local. */
  const tellPrimary = (event: PoolEvent) => {
    if (event.type === "health") {
      if (!adopting && event.to.status === "unhealthy") primary!.send({ type: "down", url: event.backend.url, reason: event.to.reason });
    } else if (event.type === "ejected" || event.type === "returned" || event.type === "ejection-refused") logPoolEvent(log, event, pool);
  };
  const adoptPoolState = (state: readonly BackendState[]) => {
    adopting = true;
    try {
      applyPoolState(pool, state);
    } finally {
      adopting = false;
    }
  };
  const workers = !primary && config.workers > 1 ? new WorkerSet(config, pool, metrics, log, (lines) => accessLog?.writeLines(lines)) : null;
  const tlsToBackends = upstreamTls(config);
  const checker = new HealthChecker(pool, checkSettings(config, tlsToBackends), (backend, ok) => {
    const m = metrics.of(backend.url);
    if (ok) m.checksPassed++;
    else m.checksFailed++;
  });
  let current = config;
  /** Listeners replaced by a certificate reload, finishing their requests. */
  const retiring = new Set<Server<Tunnel>>();
  const discovery = new DnsDiscovery(pool, dnsLookup(config.dnsServer), log, () => current.drainTimeout);
  const upstream = new HttpClient(upstreamSettings(config, tlsToBackends), {
    onResend: (url) => {
      metrics.of(url).resends++;
      log.debug(`resent a request to ${url} on a fresh connection: the reused one closed before answering`);
    },
  });
  const forwarder = new Forwarder({ pool, upstream, accessLog, metrics, log, ...forwarderTuning(config) });
  const queued = () => forwarder.queued;

  // What a change in the pool sets off, wired here where every part it reaches exists.
  onPoolEvent = (event) => {
    if (primary) tellPrimary(event);
    else {
      logPoolEvent(log, event, pool);
      events.add(event.backend.name, describeState(event.backend), describeEvent(event));
      if (event.type === "added") void checker.watch(event.backend);
      if (event.type === "removed") checker.unwatch(event.backend);
    }
    if (event.type === "removed") {
      metrics.backends.delete(event.backend.url); // else DNS churn would grow /metrics without bound
      upstream.forget(event.backend.url);
    }
    // Requests stuck on a backend whose checks get no answer move elsewhere now, not at --timeout.
    if (event.type === "health" && event.to.status === "unhealthy" && event.to.unanswered) forwarder.backendUnresponsive(event.backend);
    // Requests queued for room get another look at the pool; workers get the pool as it now is.
    forwarder.wakeWaitingRequests();
    workers?.pushPoolState();
  };
  if (primary) adoptPoolState(primary.state);

  let ready = false;
  let firstRound: Promise<void> = Promise.resolve();
  // Read before binding, so a missing file is a config error, not a listener one.
  const tls = readCertificates(config);
  const handle = (request: Request, client: ClientConnection) =>
    ready ? forwarder.handle(request, client) : firstRound.then(() => forwarder.handle(request, client));
  // With TLS the listener is opened with SO_REUSEPORT, so a reload can start one with new certificates beside it and
  // retire the old one gracefully; an exclusive bind first keeps "port in use" an error.
  // With --workers the primary only claims the port (for "port in use" now, and a number for port 0); workers serve it.
  // A worker's port was claimed by its primary, and its sibling workers hold it already.
  const proxyPort = (tls || workers) && !primary ? listen("proxy", () => claimPort(config.host, config.port)) : config.port;
  const reusePort = Boolean(tls || primary);
  let server: Server<Tunnel> | null = workers ? null : listen("proxy", () => serveProxy({ ...config, port: proxyPort }, log, tls, reusePort, handle));
  const port = server?.port ?? proxyPort;
  let redirect: Server<undefined> | null = null;
  if (config.httpRedirectPort && !primary) {
    try {
      redirect = listen("redirect", () => serveHttpRedirect(config, port));
    } catch (error) {
      await server?.stop(true);
      throw error;
    }
  }
  if (config.backendInsecure && !primary) log.warn("--backend-insecure: https:// backends' certificates are NOT verified");
  let admin: Server<undefined> | null = null;
  if (config.admin && !primary) {
    const handler = createAdminHandler({
      pool,
      metrics: workers ? () => workers.metrics() : () => metrics,
      events,
      queued: workers ? () => workers.queued() : queued,
      log,
      token: config.adminToken,
      drainTimeoutMs: () => current.drainTimeout,
    });
    try {
      admin = listen("admin", () => startAdminServer(config.admin!, handler, log));
    } catch (error) {
      await server?.stop(true);
      await redirect?.stop(true);
      throw error;
    }
  }
  if (!primary) {
    firstRound = (async () => {
      await discovery.follow(resolvedBackends(config));
      await checker.start();
    })();
    await firstRound;
    discovery.start(config.resolveInterval);
  }
  if (workers) {
    try {
      await workers.start(config.workers, { ...config, port });
    } catch (error) {
      checker.stop();
      discovery.stop();
      await admin?.stop(true);
      await redirect?.stop(true);
      throw new ListenError("proxy", error);
    }
  }
  ready = true;

  const healthy = pool.available().length;
  const url = new URL(`${config.tlsCert ? "https" : "http"}://${hostInUrl(config.host)}:${port}`);
  const adminUrl = admin && new URL(`http://${hostInUrl(config.admin!.host)}:${admin.port}`);
  if (!primary) log.info(
    `lb listening on ${url.origin} → ${plural(pool.backends.length, "backend")} (${healthy} healthy): ${config.backends.map(describeBackend).join(", ")}` +
      ` · policy ${config.policy} · health ${config.healthMethod} ${config.healthPath} expects ${describeStatuses(config.healthStatus)}` +
      ` every ${formatDuration(config.healthInterval)} · admin ${adminUrl ? adminUrl.origin : "off"}` +
      (workers ? ` · ${config.workers} workers` : ""),
  );

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      checker.stop();
      discovery.stop();
      pool.close();
      void admin?.stop(true);
      void redirect?.stop(true);
      const { drainTimeout } = current;
      if (workers) await workers.stop(drainTimeout);
      if (server) await drainListener(server, drainTimeout, log);
      for (const old of retiring) await old.stop(true);
      upstream.close();
      accessLog?.flush();
    })());

  /** Re-reads the certificate files and moves new connections to a listener that serves them; none is dropped. */
  const renewCertificates = (old: Server<Tunnel>) => {
    const fresh = readCertificates(current); // throws ConfigError: the reload is rejected, the old listener stays
    server = listen("proxy", () => serveProxy({ ...current, port: old.port! }, log, fresh, true, handle));
    retiring.add(old);
    void settlesWithin(old.stop(), current.drainTimeout).then(async () => {
      await old.stop(true);
      retiring.delete(old);
    });
  };

  const reload = (next: Config): string => {
    // First the files a reload reads: one that cannot be read rejects the whole reload before anything changed.
    const nextTls = upstreamTls(next);
    if (tls && server) renewCertificates(server);
    const diff = diffBackends(staticBackends(current), staticBackends(next));
    // A worker's pool is the primary's business: it follows the state the primary sends after its own reload.
    if (!primary) followConfig(diff, next);
    pool.reconfigure(poolRules(next));
    checker.reconfigure(checkSettings(next, nextTls));
    upstream.configure(upstreamSettings(next, nextTls));
    forwarder.reconfigure(forwarderTuning(next));
    workers?.reload(next);
    log.level = consolaLevel(next.logLevel);
    const changed = changedSettings(current, next);
    const needRestart = changed.filter((name) => RESTART_ONLY.has(name));
    if (needRestart.length && !primary) log.warn(`config reload: ${needRestart.join(", ")} change only on restart; the running values stay`);
    current = effectiveConfig(current, next);
    const applied = changed.filter((name) => !RESTART_ONLY.has(name));
    return (
      `config reloaded: ${diff.added.length} backend(s) added, ${diff.removed.length} draining out, ` +
      `${diff.reweighted.length} reweighted` +
      (applied.length ? `; changed: ${applied.join(", ")}` : "")
    );
  };

  /** The file's backends, applied to the pool: new ones added, changed weights set, dropped ones drained out. */
  const followConfig = (diff: ReturnType<typeof diffBackends>, next: Config) => {
    void discovery.follow(resolvedBackends(next));
    discovery.start(next.resolveInterval);
    for (const spec of diff.added) {
      const existing = pool.find(spec.url);
      if (existing) {
        existing.weight = spec.weight; // added through the API before (or still draining): the file manages it now
        if (existing.admin === "draining") pool.setAdminState(existing, "active");
        continue;
      }
      try {
        pool.add(spec);
      } catch (error) {
        log.warn(`config reload: ${spec.url} cannot be added: ${(error as Error).message}`);
      }
    }
    for (const spec of diff.reweighted) {
      const backend = pool.find(spec.url);
      if (backend) backend.weight = spec.weight;
    }
    for (const url of diff.removed) {
      const backend = pool.find(url);
      if (backend) void drainAndRemove(pool, backend, next.drainTimeout);
    }
  };

  const reopenLogs = () => {
    accessLog?.reopen();
    workers?.reopenLogs();
  };
  return { url, port, adminUrl, pool, metrics, queued, adoptPoolState, reload, reopenLogs, stop };
}

/** Stops a listener: in-flight requests finish within the drain timeout, then the rest are closed. */
async function drainListener(server: Server<Tunnel>, drainTimeout: number, log: Logger): Promise<void> {
  const inflight = server.pendingRequests;
  if (inflight > 0) log.info(`draining ${inflight} in-flight request(s), at most ${formatDuration(drainTimeout)}`);
  const drained = await settlesWithin(server.stop(), drainTimeout);
  if (!drained) {
    log.warn(`drain timeout: closing ${server.pendingRequests} request(s) still in flight`);
    await server.stop(true);
  }
}

type TlsCertificates = Array<{ cert: string; key: string; serverName?: string }>;

/** The default certificate first, then one per --tls-sni name; undefined when lb serves plain HTTP. */
function readCertificates(config: Config): TlsCertificates | undefined {
  if (!config.tlsCert) return undefined;
  return [
    { cert: readPem(config.tlsCert, "tls-cert"), key: readPem(config.tlsKey, "tls-key") },
    ...config.tlsSni.map(({ serverName, cert, key }) => ({
      serverName,
      cert: readPem(cert, `tls-sni ${serverName}`),
      key: readPem(key, `tls-sni ${serverName}`),
    })),
  ];
}

/** Binds the port exclusively for a moment: fails (EADDRINUSE) if anything holds it; returns the port (0 → a free one). */
function claimPort(hostname: string, port: number): number {
  const probe = Bun.listen({ hostname, port, exclusive: true, socket: { data() {} } });
  const claimed = probe.port;
  probe.stop(true);
  return claimed;
}

function readPem(path: string, setting: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${setting}: cannot read ${path} (${(error as NodeJS.ErrnoException).code}); check the path`);
  }
}

/** Plain HTTP on another port, answering every request with a redirect to the same URL over HTTPS. */
function serveHttpRedirect(config: Config, httpsPort: number) {
  return Bun.serve({
    port: config.httpRedirectPort,
    hostname: config.host,
    development: false,
    reusePort: false,
    fetch(request) {
      const host = (request.headers.get("host") ?? config.host).replace(/:\d+$/, "");
      const port = httpsPort === 443 ? "" : `:${httpsPort}`;
      return new Response(null, { status: 308, headers: { location: `https://${host}${port}${pathOf(request.url)}` } });
    },
  });
}

/** The access log the config asks for; `sink` overrides where its lines go (a worker hands them to its primary). */
export function createAccessLog(config: Config, log: Logger, sink?: Sink): AccessLog | null {
  if (!config.accessLog) return null;
  const format = config.accessLogFormat || config.logFormat;
  if (sink) return new AccessLog(format, sink);
  if (!config.accessLogFile) return new AccessLog(format);
  return new AccessLog(format, new FileSink(config.accessLogFile, (message) => log.warn(message)));
}

function listen<T>(listener: ListenError["listener"], start: () => T): T {
  try {
    return start();
  } catch (error) {
    throw new ListenError(listener, error);
  }
}

/** The client-facing listener; requests go to `handle` with what the edge knows of the client. */
function serveProxy(
  config: Config,
  log: Logger,
  tls: TlsCertificates | undefined,
  reusePort: boolean,
  handle: (request: Request, client: ClientConnection) => Promise<Response | undefined>,
) {
  // Bun counts idle time in whole seconds.
  const clientIdleSeconds = Math.ceil(config.clientTimeout / 1000);
  return Bun.serve<Tunnel>({
    port: config.port,
    hostname: config.host,
    tls,
    development: false,
    idleTimeout: clientIdleSeconds,
    // Explicit: Bun's sockets are not exclusive by default; shared only for a certificate reload (see claimPort).
    reusePort,
    // Bodies stream, so memory does not bound them; --max-body-size does (Bun answers 413 past it).
    maxRequestBodySize: config.maxBodySize || Number.MAX_SAFE_INTEGER,
    fetch(request, server) {
      return handle(request, {
        ip: server.requestIP(request)?.address ?? "-",
        proto: tls ? "https" : "http",
        openRequests: server.pendingRequests + server.pendingWebSockets,
        holdOpen: (waiting) => server.timeout(request, waiting ? 0 : clientIdleSeconds),
        upgrade: (tunnel, headers) => server.upgrade(request, { data: tunnel, headers }),
      });
    },
    websocket: tunnelHandlers,
    error(error) {
      log.error(`internal error: ${error.message}`);
      return errorResponse(500, "internal error in lb");
    },
  });
}

function staticBackends(config: Config): BackendSpec[] {
  return config.backends.filter((spec) => !spec.resolve);
}

function resolvedBackends(config: Config): BackendSpec[] {
  return config.backends.filter((spec) => spec.resolve);
}

function describeBackend({ url, weight, resolve }: BackendSpec): string {
  const notes = [...(weight === 1 ? [] : [`weight ${weight}`]), ...(resolve ? ["resolved from DNS"] : [])];
  return notes.length ? `${url} (${notes.join(", ")})` : url;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}


/** A pool event in a few words, for the dashboard's log. */
function describeEvent(event: PoolEvent): string {
  switch (event.type) {
    case "health":
      return event.to.status === "healthy" ? `up (${event.to.reason})` : `down: ${event.to.reason}`;
    case "ejected":
      return `ejected for ${formatDuration(event.forMs)} after repeated errors`;
    case "ejection-refused":
      return "failing, but kept in rotation (ejection limit)";
    case "returned":
      return "back from ejection";
    case "admin":
      return event.state === "active" ? "enabled" : event.state;
    case "added":
      return "added";
    case "removed":
      return "removed";
  }
}

function logPoolEvent(log: Logger, event: PoolEvent, pool: Pool): void {
  const { backend } = event;
  switch (event.type) {
    case "health":
      if (event.to.status === "healthy") {
        log.info(`backend ${backend.name} is ${event.from.status === "unknown" ? "up" : "back up"} (${event.to.reason})`);
      } else {
        log.warn(`backend ${backend.name} ${event.from.status === "unknown" ? "is down" : "went down"}: ${event.to.reason}`);
      }
      break;
    case "added":
    case "removed":
      log.info(`backend ${backend.url} ${event.type} (${plural(pool.backends.length, "backend")} in the pool)`);
      break;
    case "ejected":
      log.warn(`backend ${backend.name} ejected for ${formatDuration(event.forMs)}: too many 5xx or gateway errors in a row`);
      break;
    case "ejection-refused":
      log.warn(`backend ${backend.name} keeps failing but stays in rotation: ejecting it would pass the outlier-max-ejected share`);
      break;
    case "returned":
      log.info(`backend ${backend.name} is back in rotation after its ejection`);
      break;
  }
  const tookOneOut = (event.type === "health" && event.to.status !== "healthy") || event.type === "ejected";
  if (tookOneOut && pool.available().length === 0) log.error("no healthy backends: answering 503 until one recovers");
}
