/**
 * Every setting lb has, defined once: the command line, the config file, `--help` and the README table all come
 * from this list, so they cannot drift apart. What a config is lives in types.ts, the kinds of value in values.ts.
 */
import { ACCESS_FORMATS } from "../log/access-log.ts";
import { formatDuration } from "./duration.ts";
import { COMPRESSION_SPECS } from "./settings-compression.ts";
import { TRACING_SPECS } from "./settings-tracing.ts";
import { HEALTH_METHODS, HTTP2_MODES, LOG_FORMATS, LOG_LEVELS, POLICIES, type Config, type Environment } from "./types.ts";
import {
  ACME_DIRECTORIES,
  type ValueParser,
  acmeDirectory,
  acmeNameList,
  adminAddress,
  adminToken,
  backendList,
  boolean,
  byteSize,
  duration,
  emailAddress,
  hashKey,
  headerList,
  integer,
  oneOf,
  optionalText,
  percent,
  sniList,
  statusRanges,
  text,
  workerCount,
} from "./values.ts";
import { PROXY_SPECS } from "./settings-proxy.ts";
import { EDGE_SETTINGS } from "./settings-edge.ts";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The admin API's port unless told otherwise. Not 9090: Prometheus listens there by default, and lb would not start
 * beside it. 7019 is no common service's default: clear of Prometheus and its exporters (9090-9999: node_exporter
 * 9100, Pushgateway 9091, Alertmanager 9093), Grafana (3000), HAProxy's stats (8404/8405), Traefik's dashboard (8080),
 * Caddy's admin (2019), Envoy's (9901) and Istio's (15000), Kong's admin and kubectl proxy (8001), Consul (8500), Vault
 * (8200), Linkerd (4191), and of the 80xx ports web apps and backends take; below the kernel's ephemeral ports too.
 */
export const DEFAULT_ADMIN_PORT = 7019;

/** Where --help lists a setting. */
export const SETTING_GROUPS = {
  listening: "Listening",
  backends: "Backends and forwarding",
  health: "Health checks and ejection",
  balancing: "Balancing",
  limits: "Limits",
  tls: "TLS",
  acme: "Automatic HTTPS (ACME)",
  admin: "Admin API",
  logging: "Logging",
  tracing: "Tracing (OpenTelemetry)",
  edge: "Edge policies (per pool and per route)",
} as const;

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  group: keyof typeof SETTING_GROUPS;
  /** The flag name, which is also the key in a config file. */
  name: string;
  alias?: string;
  type: "string" | "boolean";
  /** Given more than once on the command line, every value counts (a list), not just the last. */
  repeatable?: boolean;
  valueHint?: string;
  description: string;
  example: string;
  /** Only a restart applies it (a listener, where logs go): a reload keeps the running value and says so. */
  restart?: true;
  /** A named pool may set its own value (`[pools.api]`); the top-level one is its default. */
  perPool?: true;
  /** A route may set its own value too (`[[routes]]`), over its pool's; only for perPool settings. */
  perRoute?: true;
  /** The default; a function when it depends on the environment (a terminal or not). */
  fallback: Config[K] | ((env: Environment) => Config[K]);
  /** How `--help` and the README write the default, where the value itself would not say it well ("" shows none). */
  shownDefault?: string;
  parse: ValueParser<Config[K]>;
}

/**
 * A setting's value as written at `place` (which names it: "lb.toml: timeout", "pools.api.timeout"), or null with its
 * problems added, each starting with `place`.
 */
export function parseSettingAt(setting: Setting, raw: unknown, place: string, problems: string[]): { value: unknown } | null {
  const parsed = setting.parse(raw);
  if (!("error" in parsed)) return { value: parsed.value };
  if (Array.isArray(parsed.error)) problems.push(...parsed.error.map((item) => `${place}${item}`));
  else problems.push(`${place}: ${parsed.error}`);
  return null;
}

/** The settings as written below: a setting's name is its key in kebab case unless it says otherwise. */
export type SettingSpec = { [K in keyof Config]: Omit<Setting<K>, "name"> & { name?: string } }[keyof Config];

/** maxInflight → max-inflight. */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

const SPECS: SettingSpec[] = [
  {
    key: "port", group: "listening", restart: true, alias: "p", type: "string", valueHint: "port", fallback: 8000,
    description: "Port to accept client requests on; 0 picks a free one (the startup line prints it)",
    example: "--port 8000", parse: integer(0, 65535, "a port"),
  },
  {
    key: "host", group: "listening", restart: true, type: "string", valueHint: "address", fallback: "0.0.0.0",
    description: "Address to listen on", example: "--host 127.0.0.1", parse: text(() => null),
  },
  {
    key: "backends", perPool: true, group: "backends", type: "string", valueHint: "url,url", fallback: [],
    description: "Backend servers, comma-separated (or give them as arguments); #weight=N sets a weight",
    example: "--backends http://10.0.0.1:8080,http://10.0.0.2:8080", parse: backendList,
  },
  {
    key: "healthPath", perPool: true, group: "health", type: "string", valueHint: "path", fallback: "/",
    description: "Path requested on each backend by the health check (passing statuses: --health-status)",
    example: "--health-path /healthz",
    parse: text((s) => (s.startsWith("/") ? null : `"${s}" must start with /`)),
  },
  {
    key: "healthInterval", perPool: true, group: "health", type: "string", valueHint: "duration", fallback: 10_000,
    description: "Time between checks of each backend", example: "--health-interval 2s", parse: duration(100),
  },
  {
    key: "healthTimeout", perPool: true, group: "health", type: "string", valueHint: "duration", fallback: 2_000,
    description: "A health check that takes longer fails", example: "--health-timeout 500ms", parse: duration(10),
  },
  {
    key: "timeout", perPool: true, group: "backends", type: "string", valueHint: "duration", fallback: 60_000,
    description: "Longest wait for a backend's response headers (after the last body byte it took) before answering 504",
    example: "--timeout 30s", parse: duration(10),
  },
  {
    key: "connectTimeout", perPool: true, group: "backends", type: "string", valueHint: "duration", fallback: 3_000,
    description: "Longest wait for a connection to a backend; past it the request goes to the next one and the backend is marked down",
    example: "--connect-timeout 1s", parse: duration(10),
  },
  {
    key: "upstreamIdleTimeout", perPool: true, group: "backends", type: "string", valueHint: "duration", fallback: 4_000,
    description: "An idle keep-alive connection to a backend is closed after this long (keep it under the backends' own)",
    example: "--upstream-idle-timeout 30s", parse: duration(10),
  },
  {
    key: "upstreamReadTimeout", perPool: true, group: "backends", type: "string", valueHint: "duration", fallback: 60_000,
    description: "Longest silence while an answer streams (the backend sends nothing, or the client reads nothing); past it lb cuts the stream",
    example: "--upstream-read-timeout 5m", parse: duration(100),
  },
  {
    key: "retries", perPool: true, group: "backends", type: "string", valueHint: "n", fallback: 3,
    description: "Other backends to try after a connection failure (never the same one twice)",
    example: "--retries 1", parse: integer(0, 100, "a retry count"),
  },
  {
    key: "retryBudget", perPool: true, group: "backends", type: "string", valueHint: "percent", fallback: 20,
    description: "Retries after a reset may be at most this share of requests in flight (at least 3), so a failing pool is not hammered",
    example: "--retry-budget 10", parse: percent,
  },
  {
    key: "policy", perPool: true, group: "balancing", type: "string", valueHint: POLICIES.join("|"), fallback: "round-robin",
    description: "How a backend is chosen for each request (docs/balancing.md says when to use which)",
    example: "--policy least-connections", parse: oneOf(POLICIES),
  },
  {
    key: "hashKey", perPool: true, group: "balancing", type: "string", valueHint: "ip|path|header:NAME|cookie:NAME", fallback: { kind: "ip" },
    description: "What --policy hash hashes; requests without it are balanced round robin",
    example: "--hash-key header:X-User",
    parse: hashKey,
  },
  {
    key: "stickyCookie", perPool: true, group: "balancing", type: "string", valueHint: "name", fallback: "",
    description: "Pin each client to one backend with a cookie of this name (off when empty)",
    example: "--sticky-cookie lb_backend",
    parse: optionalText((s) => (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(s) ? null : `"${s}" is not a cookie name`)),
  },
  {
    key: "slowStart", perPool: true, group: "balancing", type: "string", valueHint: "duration", fallback: 0,
    description: "A backend that comes back ramps from 10% to its full weight over this time (0 = off)",
    example: "--slow-start 30s", parse: duration(0),
  },
  {
    key: "healthMethod", perPool: true, group: "health", type: "string", valueHint: HEALTH_METHODS.join("|"), fallback: "GET",
    description: "Method of the health check request", example: "--health-method HEAD", parse: oneOf(HEALTH_METHODS),
  },
  {
    key: "healthStatus", perPool: true, group: "health", type: "string", valueHint: "list", fallback: [[200, 200]],
    description: "Statuses that pass the health check (default 200)", example: "--health-status 200-399", parse: statusRanges,
  },
  {
    key: "healthBody", perPool: true, group: "health", type: "string", valueHint: "text", fallback: "",
    description: "Text the health check answer must contain (not checked when empty)",
    example: `--health-body '"status":"ok"'`, parse: optionalText(() => null),
  },
  {
    key: "healthHeaders", perPool: true, group: "health", name: "health-header", type: "string", valueHint: "name: value", fallback: [], repeatable: true,
    description: "Extra header for health checks, Host included; repeat the flag for more",
    example: '--health-header "Host: app.internal"', parse: headerList,
  },
  {
    key: "healthRise", perPool: true, group: "health", type: "string", valueHint: "n", fallback: 1,
    description: "Consecutive passing checks that bring a down backend back", example: "--health-rise 2",
    parse: integer(1, 100, "a check count"),
  },
  {
    key: "healthFall", perPool: true, group: "health", type: "string", valueHint: "n", fallback: 1,
    description: "Consecutive failing checks that take a backend down", example: "--health-fall 3",
    parse: integer(1, 100, "a check count"),
  },
  {
    key: "healthDownInterval", perPool: true, group: "health", type: "string", valueHint: "duration", fallback: 0, shownDefault: "",
    description: "Time between checks of a backend that is down (default: the health interval)",
    example: "--health-down-interval 1s", parse: duration(0),
  },
  {
    key: "healthJitter", perPool: true, group: "health", type: "string", valueHint: "percent", fallback: 10,
    description: "Spread each backend's check times by up to this share of the interval, so checks do not fire together",
    example: "--health-jitter 20", parse: percent,
  },
  {
    key: "outlierErrors", perPool: true, group: "health", type: "string", valueHint: "n", fallback: 5,
    description: "Consecutive 5xx or gateway errors that eject a backend (0 = never)", example: "--outlier-errors 3",
    parse: integer(0, 1000, "an error count"),
  },
  {
    key: "outlierEjection", perPool: true, group: "health", type: "string", valueHint: "duration", fallback: 30_000,
    description: "How long a first ejection lasts; it doubles with each repeat, up to 10 times this",
    example: "--outlier-ejection 10s", parse: duration(100),
  },
  {
    key: "outlierMaxEjected", perPool: true, group: "health", type: "string", valueHint: "percent", fallback: 50,
    description: "Never eject more than this share of the backends", example: "--outlier-max-ejected 30", parse: percent,
  },
  {
    key: "maxInflight", perPool: true, group: "limits", type: "string", valueHint: "n", fallback: 0,
    description: "Most requests in flight to one backend; more wait in the queue (0 = no limit)", example: "--max-inflight 100",
    parse: integer(0, 1_000_000, "a request count"),
  },
  {
    key: "maxBodySize", group: "limits", restart: true, type: "string", valueHint: "size", fallback: 1024 ** 3, shownDefault: "1g",
    description: "Largest request body accepted; bigger ones get 413 (0 = no limit)", example: "--max-body-size 10mb",
    parse: byteSize,
  },
  {
    key: "workers", group: "limits", restart: true, type: "string", valueHint: "n|auto", fallback: 1,
    description: "Processes that serve traffic, sharing the port (auto: one per CPU); health checks run once, in the primary",
    example: "--workers auto", parse: workerCount,
  },
  {
    key: "maxConnections", group: "limits", type: "string", valueHint: "n", fallback: 10_000,
    description: "Most client requests (and WebSocket tunnels) open at once; beyond it, 503 at once (0 = no limit)",
    example: "--max-connections 2000", parse: integer(0, 1_000_000, "a connection limit"),
  },
  {
    key: "clientTimeout", group: "limits", restart: true, type: "string", valueHint: "duration", fallback: 10_000,
    description: "Longest a client may stay silent: idle keep-alive, between header bytes, between body chunks",
    example: "--client-timeout 30s", parse: duration(1000, 255_000),
  },
  {
    key: "queueSize", perPool: true, group: "limits", type: "string", valueHint: "n", fallback: 1000,
    description: "Most requests waiting for a backend with room; beyond it, 503 at once", example: "--queue-size 200",
    parse: integer(0, 1_000_000, "a queue size"),
  },
  {
    key: "queueTimeout", perPool: true, group: "limits", type: "string", valueHint: "duration", fallback: 10_000,
    description: "Longest wait in the queue before a 503", example: "--queue-timeout 2s", parse: duration(0),
  },
  {
    key: "tlsCert", group: "tls", restart: true, type: "string", valueHint: "file", fallback: "",
    description: "PEM certificate (chain) to serve HTTPS with; needs --tls-key", example: "--tls-cert /etc/lb/cert.pem",
    parse: optionalText(() => null),
  },
  {
    key: "tlsKey", group: "tls", restart: true, type: "string", valueHint: "file", fallback: "",
    description: "PEM private key for --tls-cert", example: "--tls-key /etc/lb/key.pem", parse: optionalText(() => null),
  },
  {
    key: "tlsSni", group: "tls", restart: true, type: "string", valueHint: "name=cert,key", fallback: [], repeatable: true,
    description: "Another certificate for clients asking for that server name (SNI); repeat for more",
    example: "--tls-sni api.example.com=/etc/lb/api.pem,/etc/lb/api.key", parse: sniList,
  },
  {
    key: "http2", group: "listening", restart: true, type: "string", valueHint: HTTP2_MODES.join("|"), fallback: "auto",
    description: "HTTP/2 beside HTTP/1.1: auto = by ALPN when serving TLS; on = also in clear text to clients that open with its preface (h2c); off",
    example: "--http2 on", parse: oneOf(HTTP2_MODES),
  },
  {
    key: "http3", group: "listening", restart: true, type: "boolean", fallback: false,
    description: "Also serve HTTP/3 (QUIC, over UDP) on the same port number; needs --tls-cert (experimental in Bun)",
    example: "--http3", parse: boolean,
  },
  {
    key: "httpRedirectPort", group: "tls", restart: true, type: "string", valueHint: "port", fallback: 0,
    description: "With TLS, also listen for plain HTTP on this port and redirect it to HTTPS (0 = off)",
    example: "--http-redirect-port 80", parse: integer(0, 65535, "a port"),
  },
  {
    key: "acme", group: "acme", restart: true, type: "string", valueHint: "name", fallback: [], repeatable: true,
    description:
      "Get a certificate for this name from an ACME CA (Let's Encrypt) and renew it; repeat for more (routes: every exact route host); --port then defaults to 443, --http-redirect-port to 80",
    example: "--acme example.com", parse: acmeNameList,
  },
  {
    key: "acmeEmail", group: "acme", restart: true, type: "string", valueHint: "address", fallback: "",
    description: "Contact address for the ACME account (the CA writes about expiring certificates and policy changes)",
    example: "--acme-email ops@example.com", parse: emailAddress,
  },
  {
    key: "acmeCa", group: "acme", restart: true, type: "string", valueHint: "url", fallback: ACME_DIRECTORIES.letsencrypt!, shownDefault: "Let's Encrypt",
    description: "ACME directory URL of the CA; letsencrypt-staging for Let's Encrypt's test CA (untrusted certificates, generous limits)",
    example: "--acme-ca letsencrypt-staging", parse: acmeDirectory,
  },
  {
    key: "acmeCaCert", group: "acme", restart: true, type: "string", valueHint: "file", fallback: "",
    description: "PEM CA certificate(s) trusted for the ACME server's own HTTPS (a private CA; default: the system's)",
    example: "--acme-ca-cert /etc/lb/acme-ca.pem", parse: optionalText((s) => (existsSync(s) ? null : `${s}: no such file`)),
  },
  {
    key: "acmeEabKid", group: "acme", restart: true, type: "string", valueHint: "key-id", fallback: "",
    description: "External Account Binding key ID, for CAs that require one (ZeroSSL, Google); needs --acme-eab-hmac",
    example: "--acme-eab-kid kid-1", parse: optionalText(() => null),
  },
  {
    key: "acmeEabHmac", group: "acme", restart: true, type: "string", valueHint: "key", fallback: "",
    description: "External Account Binding HMAC key (base64url; a secret: LB_ACME_EAB_HMAC keeps it out of ps)",
    example: "--acme-eab-hmac $(cat /run/secrets/eab-hmac)",
    parse: optionalText((s) => (/^[A-Za-z0-9_-]+=*$/.test(s) ? null : "is not base64url text")),
  },
  {
    key: "stateDir", group: "acme", restart: true, type: "string", valueHint: "dir", fallback: defaultStateDir,
    shownDefault: "$STATE_DIRECTORY (systemd), /var/lib/lb as root, else $XDG_DATA_HOME/lb",
    description: "Where lb keeps its ACME account key and certificates (files of mode 0600); instances may share it",
    example: "--state-dir /var/lib/lb", parse: text(() => null),
  },
  {
    key: "backendCa", perPool: true, group: "tls", type: "string", valueHint: "file", fallback: "",
    description: "PEM CA certificate(s) that https:// backends are verified against (default: the system's)",
    example: "--backend-ca /etc/lb/internal-ca.pem", parse: optionalText(() => null),
  },
  {
    key: "backendInsecure", perPool: true, group: "tls", type: "boolean", fallback: false,
    description: "Do not verify https:// backends' certificates (test setups only; warned about at startup)",
    example: "--backend-insecure", parse: boolean,
  },
  {
    key: "admin", group: "admin", restart: true, type: "string", valueHint: "host:port|off", fallback: { host: "127.0.0.1", port: DEFAULT_ADMIN_PORT },
    shownDefault: `127.0.0.1:${DEFAULT_ADMIN_PORT}`,
    description: "Where the admin API listens (loopback unless a token is set); off turns it off",
    example: `--admin 127.0.0.1:${DEFAULT_ADMIN_PORT}`, parse: adminAddress,
  },
  {
    key: "adminToken", group: "admin", restart: true, type: "string", valueHint: "token", fallback: "",
    description: "Bearer token the admin API requires (LB_ADMIN_TOKEN keeps it out of ps); needed to listen beyond loopback",
    example: "--admin-token $(cat /run/secrets/lb-token)", parse: adminToken,
  },
  {
    key: "hooks", group: "backends", restart: true, type: "string", valueHint: "file", fallback: "",
    description: "TypeScript or JavaScript module whose onRequest/onResponse lb calls for each request (lb types prints their types)",
    example: "--hooks ./lb.hooks.ts",
    // Only that it exists: loading it (an import) is async, and done where lb starts and where it validates.
    parse: optionalText((s) => (existsSync(s) ? null : `${s}: no such file`)),
  },
  {
    key: "hooksTimeout", group: "backends", type: "string", valueHint: "duration", fallback: 1_000,
    description: "Longest an async hook may take; past it the request gets an error from lb (a synchronous hook cannot be interrupted)",
    example: "--hooks-timeout 200ms", parse: duration(1, 60_000),
  },
  {
    key: "resolveInterval", perPool: true, group: "backends", type: "string", valueHint: "duration", fallback: 30_000,
    description: "How often backends marked resolve are looked up again in DNS", example: "--resolve-interval 10s",
    parse: duration(100),
  },
  {
    key: "dnsServer", group: "backends", restart: true, type: "string", valueHint: "host:port", fallback: "",
    description: "DNS server for resolve backends (default: the system's resolvers)", example: "--dns-server 10.96.0.10:53",
    parse: optionalText((s) => ("error" in adminAddress(s) ? `"${s}" is not host:port` : null)),
  },
  {
    key: "drainTimeout", group: "backends", type: "string", valueHint: "duration", fallback: 10_000,
    description: "On SIGINT/SIGTERM, how long in-flight requests may take to finish",
    example: "--drain-timeout 30s", parse: duration(0),
  },
  {
    key: "logLevel", group: "logging", type: "string", valueHint: LOG_LEVELS.join("|"), fallback: "info",
    description: "Least important messages to print", example: "--log-level debug", parse: oneOf(LOG_LEVELS),
  },
  {
    key: "logFormat", group: "logging", restart: true, type: "string", valueHint: LOG_FORMATS.join("|"),
    fallback: (env) => (env.stdoutIsTTY ? "pretty" : "json"),
    description: "Log lines for people or for machines (default: pretty on a terminal, json otherwise)",
    example: "--log-format json", parse: oneOf(LOG_FORMATS),
  },
  {
    key: "accessLog", group: "logging", restart: true, type: "boolean", fallback: true,
    description: "One line per request on stdout (--no-access-log turns it off)",
    example: "--no-access-log", parse: boolean,
  },
  {
    key: "accessLogFormat", group: "logging", restart: true, type: "string", valueHint: ACCESS_FORMATS.join("|"), fallback: "",
    description: "Access line format: json, combined (Apache/nginx), combined-time (combined + request seconds) or pretty (default: as --log-format)",
    example: "--access-log-format combined", parse: oneOf(ACCESS_FORMATS),
  },
  {
    key: "accessLogFile", group: "logging", restart: true, type: "string", valueHint: "path", fallback: "",
    description: "Write access lines to this file instead of stdout; SIGUSR1 reopens it (for logrotate)",
    example: "--access-log-file /var/log/lb/access.log", parse: optionalText(() => null),
  },
];

/**
 * systemd's $STATE_DIRECTORY (the unit's StateDirectory=lb), else /var/lib/lb for root, as system services keep state,
 * else $XDG_DATA_HOME/lb (~/.local/share/lb when unset).
 */
function defaultStateDir(): string {
  const systemd = process.env.STATE_DIRECTORY?.split(":")[0];
  if (systemd) return systemd;
  if (process.getuid?.() === 0) return "/var/lib/lb";
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "lb");
}

export const SETTINGS: Setting[] = [...SPECS, ...TRACING_SPECS, ...PROXY_SPECS, ...EDGE_SETTINGS, ...COMPRESSION_SPECS].map((spec) => ({ ...spec, name: spec.name ?? kebab(spec.key) }) as Setting);

/** The default as a person would write it ("10s", not 10000); empty when it depends on the environment. */
export function describeDefault(setting: Setting): string {
  const { fallback, shownDefault } = setting;
  if (shownDefault !== undefined) return shownDefault;
  if (typeof fallback === "function" || typeof fallback === "object" || fallback === "") return "";
  return setting.valueHint === "duration" ? formatDuration(fallback as number) : String(fallback);
}
