/**
 * How each part of lb is set up from a Config; shared by startup and reload, so both mean the same thing. The parts
 * take the settings built here, never the whole Config: the wiring (start.ts, worker.ts, pool-set.ts) calls these.
 */
import { AccessLog, FileSink, type Sink } from "../log/access-log.ts";
import { createPolicy } from "../balance/create.ts";
import { StickySessions } from "../balance/sticky.ts";
import { currentWeight } from "../pool/backend.ts";
import type { CheckSettings } from "../pool/checker.ts";
import type { PoolRules } from "../pool/pool.ts";
import { readFileSync } from "node:fs";
import type { ForwarderTuning } from "../proxy/forwarder-options.ts";
import type { UpstreamSettings, UpstreamTls } from "../upstream/client.ts";
import { ConfigError } from "../config/load.ts";
import { fallbackPool } from "../config/pools.ts";
import type { EdgeSettings } from "../edge/policy.ts";
import type { Config, SendProxyVersion } from "../config/types.ts";
import type { ControlSettings } from "../pool/control-plane.ts";
import type { DataPlaneSettings, LaneSettings } from "../proxy/data-plane.ts";
import { type Logger, ThrottledLine } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type Tracing, startTracing } from "../tracing/tracing.ts";
import { BUILD_INFO } from "../version.ts";
import { namedPools } from "../config/pools.ts";
import { formatListen } from "../config/tcp.ts";
import { isTcpPool } from "../config/backend-url.ts";
import { shownEndpoint } from "../config/values-tracing.ts";
import type { Pool } from "../pool/pool.ts";
import type { TcpLane } from "../l4/tcp-listener.ts";
import type { TcpListenerSettings } from "../l4/tcp-service.ts";
import type { ProxyVersion } from "../net/proxy-protocol.ts";

export function poolRules(config: Config): PoolRules {
  return {
    health: { rise: config.healthRise, fall: config.healthFall },
    outlier: {
      consecutiveErrors: config.outlierErrors,
      baseEjectionMs: config.outlierEjection,
      maxEjectedPercent: config.outlierMaxEjected,
    },
  };
}

/**
 * How https:// backends are verified: against --backend-ca (read now, so a missing file is reported at startup or
 * reload), not at all with --backend-insecure, or by default against the system's CAs.
 */
export function upstreamTls(config: Config): UpstreamTls | undefined {
  if (config.backendInsecure) return { rejectUnauthorized: false };
  if (!config.backendCa) return undefined;
  try {
    return { ca: readFileSync(config.backendCa, "utf8"), rejectUnauthorized: true };
  } catch (error) {
    throw new ConfigError(`backend-ca: cannot read ${config.backendCa} (${(error as NodeJS.ErrnoException).code}); check the path`);
  }
}

/** `send-proxy = "v1"|"v2"` as the encoder's version number (backend connections, checks, [[tcp]] and tunnels). */
const proxyVersion = (written: SendProxyVersion): ProxyVersion => (written === "v1" ? 1 : 2);

function checkSettings(config: Config, tls: UpstreamTls | undefined): CheckSettings {
  return {
    method: config.healthMethod,
    path: config.healthPath,
    statuses: config.healthStatus,
    body: config.healthBody,
    headers: config.healthHeaders,
    intervalMs: config.healthInterval,
    downIntervalMs: config.healthDownInterval,
    timeoutMs: config.healthTimeout,
    jitterPercent: config.healthJitter,
    tls,
    ...(config.sendProxy && { sendProxy: proxyVersion(config.sendProxy) }),
  };
}

/** A pool's control plane: its backends, checks and DNS look-ups. */
export function controlSettings(config: Config, tls: UpstreamTls | undefined): ControlSettings {
  return {
    backends: config.backends,
    checks: checkSettings(config, tls),
    dnsServer: config.dnsServer,
    resolveIntervalMs: config.resolveInterval,
    drainTimeoutMs: config.drainTimeout,
  };
}

/** The data plane's lb-wide settings: routes, the connection limit, the hooks' budget, the edge policies. */
export function dataPlaneSettings(config: Config): DataPlaneSettings {
  return {
    routes: config.routes,
    fallbackPool: fallbackPool(config),
    maxConnections: config.maxConnections,
    hooksTimeoutMs: config.hooksTimeout,
    drainTimeoutMs: config.drainTimeout,
    trustedProxies: config.trustedProxies.length ? config.trustedProxies : null,
    edge: edgePolicies(config),
  };
}

/** The settings a route's rate limit comes from when it sets any of them itself (its own table), else its pool's. */
const RATE_LIMIT_KEYS = ["rateLimit", "rateLimitBurst", "rateLimitKey"] as const;

/** Each pool's edge settings, and each route's: its own over its pool's (docs/edge.md). */
function edgePolicies(config: Config): DataPlaneSettings["edge"] {
  const pools = new Map(namedPools(config).map(({ name, config: poolConfig }) => [name, poolConfig]));
  return {
    pools: new Map([...pools].map(([name, poolConfig]) => [name, edgeSettings(poolConfig, `pool ${name}`)])),
    routes: new Map(
      config.routes.map((route, index) => {
        const { pool, overrides = {} } = route;
        const own = RATE_LIMIT_KEYS.some((key) => key in overrides);
        return [route, edgeSettings({ ...pools.get(pool)!, ...overrides }, own ? `route ${index}` : `pool ${pool}`)];
      }),
    ),
  };
}

function edgeSettings(config: Config, table: string): EdgeSettings {
  const { rateLimit, rateLimitBurst, rateLimitKey } = config;
  return {
    compression: config.compress ? { minSize: config.compressMinSize } : null,
    allow: config.allow,
    deny: config.deny,
    rateLimit: rateLimit && { rate: rateLimit, burst: rateLimitBurst, key: rateLimitKey, table },
    requestHeaders: config.requestHeaders,
    responseHeaders: config.responseHeaders,
  };
}

/** How the data plane forwards to one pool: its connections and its requests' trips. */
export function laneSettings(config: Config, tls: UpstreamTls | undefined): LaneSettings {
  return { upstream: upstreamSettings(config, tls), forwarding: forwarderTuning(config) };
}

function upstreamSettings(config: Config, tls: UpstreamTls | undefined): UpstreamSettings {
  return {
    connectTimeoutMs: config.connectTimeout,
    idleTimeoutMs: config.upstreamIdleTimeout,
    readTimeoutMs: config.upstreamReadTimeout,
    clientIdleMs: config.clientTimeout,
    tls,
    ...(config.sendProxy && { sendProxy: proxyVersion(config.sendProxy) }),
  };
}

function forwarderTuning(config: Config): ForwarderTuning {
  return {
    policy: createPolicy(config, (backend) => currentWeight(backend, config.slowStart, Date.now())),
    sticky: config.stickyCookie ? new StickySessions(config.stickyCookie) : null,
    timeoutMs: config.timeout,
    retries: config.retries,
    retryBudgetPercent: config.retryBudget,
    maxInflight: config.maxInflight,
    queueSize: config.queueSize,
    queueTimeoutMs: config.queueTimeout,
    clientTimeoutMs: config.clientTimeout,
    // The soonest a down backend can be back: its next check, at the down interval when one is set.
    retryAfterSeconds: Math.max(1, Math.ceil((config.healthDownInterval || config.healthInterval) / 1000)),
    debug: config.logLevel === "debug",
    ...(config.sendProxy && { sendProxy: proxyVersion(config.sendProxy) }),
  };
}

/** The access log the config asks for; `sink` overrides where its lines go (a worker hands them to its primary). */
export function createAccessLog(config: Config, log: Logger, sink?: Sink): AccessLog | null {
  if (!config.accessLog) return null;
  const format = config.accessLogFormat || config.logFormat;
  if (sink) return new AccessLog(format, sink);
  if (!config.accessLogFile) return new AccessLog(format);
  return new AccessLog(format, new FileSink(config.accessLogFile, (message) => log.warn(message)));
}

/** A failed export is said at most this often (the counter has every one). */
const EXPORT_WARNING_EVERY_MS = 60_000;

/** Tracing when the config names a collector (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT), else null: off. */
export function createTracing(config: Config, metrics: Metrics, log: Logger): Tracing | null {
  if (!config.otlpEndpoint) return null;
  const { sampler, ratio } = config.traceSample;
  const warning = new ThrottledLine(EXPORT_WARNING_EVERY_MS);
  return startTracing(
    {
      url: config.otlpEndpoint,
      protocol: config.otlpProtocol,
      headers: config.otlpHeaders,
      resource: {
        attributes: [["service.name", config.traceServiceName], ["service.version", BUILD_INFO.version]],
        scope: { name: "lb", version: BUILD_INFO.version },
      },
      sampler: { ratio, parentBased: sampler.startsWith("parentbased_") },
    },
    (outcome, spans) => metrics.count("traceSpans", outcome, spans),
    // The URL without its password only: its headers may hold a token.
    (reason) => warning.say((line) => log.warn(line), `traces to ${shownEndpoint(config.otlpEndpoint)} dropped: ${reason} (lb_trace_spans_dropped_total counts them)`),
  );
}

/** The [[tcp]] entries by listen address: entries that share one form one listener. */
export function tcpListeners(config: Config): TcpListenerSettings[] {
  const listeners = new Map<string, TcpListenerSettings>();
  for (const { listen: address, pool, sni, idleTimeout } of config.tcp) {
    const listen = formatListen(address);
    let listener = listeners.get(listen);
    if (!listener) listeners.set(listen, (listener = { listen, address, entries: [] }));
    listener.entries.push({ pool, idleTimeoutMs: idleTimeout, ...(sni && { sni }) });
  }
  return [...listeners.values()];
}

/**
 * How each pool of tcp:// backends takes connections: the running pool, its policy, its connect timeout, and for a
 * pool a reload added, its first health round (`firstRounds`), which its connections wait for.
 */
export function tcpLanes(config: Config, pools: ReadonlyMap<string, Pool>, firstRounds: ReadonlyMap<string, Promise<void>>): Map<string, TcpLane> {
  const lanes = new Map<string, TcpLane>();
  for (const { name, config: own } of namedPools(config)) {
    const pool = pools.get(name);
    if (!pool || !isTcpPool(own.backends)) continue;
    const policy = createPolicy(own, (backend) => currentWeight(backend, own.slowStart, Date.now()));
    const checked = firstRounds.get(name);
    const sendProxy = own.sendProxy ? proxyVersion(own.sendProxy) : null;
    const lane: TcpLane = { pool, policy, connectTimeoutMs: own.connectTimeout, sendProxy, ...(checked && { checked }) };
    void checked?.then(() => delete lane.checked); // then connections go straight on
    lanes.set(name, lane);
  }
  return lanes;
}
