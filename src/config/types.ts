/**
 * What a config is, and nothing else: the shape every part of lb reads (Config, a pool, a route) and the words a
 * setting may take, and two questions asked of a config everywhere (does it serve TLS, which names get ACME
 * certificates). A leaf: it imports only types, so anything may import it without an import circle.
 */
import type { AccessFormat } from "../log/access-log.ts";
import type { BackendSpec } from "./backend-url.ts";
import type { Cidr } from "../net/ip.ts";
import type { HeaderRules, Rate, RateKey } from "./edge-values.ts";
import type { HashKey } from "./hash-key.ts";
import type { OtlpProtocol, TraceSample } from "./values-tracing.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export const LOG_FORMATS = ["pretty", "json"] as const;
export const POLICIES = ["round-robin", "least-connections", "random", "p2c", "ewma", "hash"] as const;
export const HEALTH_METHODS = ["GET", "HEAD", "OPTIONS", "POST"] as const;
/** auto: HTTP/2 by ALPN when lb serves TLS; on: also h2c (clear text, by prior knowledge); off: HTTP/1.1 only. */
export const HTTP2_MODES = ["auto", "on", "off"] as const;
/** The PROXY protocol version a pool's backend connections start with (send-proxy). */
export const SEND_PROXY_VERSIONS = ["v1", "v2"] as const;
export type SendProxyVersion = (typeof SEND_PROXY_VERSIONS)[number];
export type Http2Mode = (typeof HTTP2_MODES)[number];
export type PolicyName = (typeof POLICIES)[number];
export type HealthMethod = (typeof HEALTH_METHODS)[number];
/** Inclusive status ranges: "200,301-302" is [[200, 200], [301, 302]]. */
export type StatusRanges = Array<[number, number]>;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  port: number;
  host: string;
  backends: BackendSpec[];
  healthPath: string;
  healthInterval: number;
  healthTimeout: number;
  timeout: number;
  connectTimeout: number;
  upstreamIdleTimeout: number;
  upstreamReadTimeout: number;
  retries: number;
  retryBudget: number;
  drainTimeout: number;
  policy: PolicyName;
  hashKey: HashKey;
  stickyCookie: string;
  slowStart: number;
  healthMethod: HealthMethod;
  healthStatus: StatusRanges;
  healthBody: string;
  healthHeaders: Array<[string, string]>;
  healthRise: number;
  healthFall: number;
  healthDownInterval: number;
  healthJitter: number;
  outlierErrors: number;
  outlierEjection: number;
  outlierMaxEjected: number;
  maxInflight: number;
  /** Compress answers for clients that accept it (src/proxy/compression.ts). */
  compress: boolean;
  /** Whole answers under this many bytes are not compressed. */
  compressMinSize: number;
  maxBodySize: number;
  maxConnections: number;
  clientTimeout: number;
  /** Processes serving traffic; 1 means lb serves in its one process. */
  workers: number;
  queueSize: number;
  queueTimeout: number;
  admin: AdminAddress;
  adminToken: string;
  resolveInterval: number;
  dnsServer: string;
  tlsCert: string;
  tlsKey: string;
  tlsSni: SniCert[];
  /** Names lb gets certificates for from an ACME CA (src/acme/); "routes" stands for every exact route host. */
  acme: string[];
  acmeEmail: string;
  /** The ACME directory URL. */
  acmeCa: string;
  /** A PEM file trusted for the ACME server's own HTTPS; empty: the system's CAs. */
  acmeCaCert: string;
  acmeEabKid: string;
  /** External Account Binding's HMAC key (base64url): a secret, never logged or shown. */
  acmeEabHmac: string;
  /** Where the ACME account key and the certificates lb obtained are kept. */
  stateDir: string;
  httpRedirectPort: number;
  http2: Http2Mode;
  http3: boolean;
  backendCa: string;
  backendInsecure: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  accessLog: boolean;
  /** Empty: the same as logFormat. */
  accessLogFormat: AccessFormat | "";
  /** Empty: stdout. */
  accessLogFile: string;
  /** Named pools from the config file ([pools.NAME]); none: the top-level backends are the one pool. */
  pools: PoolSpec[];
  /** Which requests go to which pool ([[routes]]), first match wins; none: every request goes to the one pool. */
  routes: RouteSpec[];
  /** Every proxy connection starts with a PROXY protocol header (src/front/accept-proxy.ts). */
  acceptProxy: boolean;
  /** The peers that may send one. */
  proxyTrusted: Cidr[];
  /** The PROXY header each backend connection starts with; empty: none. */
  sendProxy: SendProxyVersion | "";
  /** Layer-4 listeners ([[tcp]]): bytes relayed to a pool of tcp:// backends, routed by TLS server name or not at all. */
  tcp: TcpSpec[];
  /** The hooks file (src/hooks/); empty: none. */
  hooks: string;
  /** The longest an async hook may take before its request gets an error from lb. */
  hooksTimeout: number;
  /** The collector's OTLP/HTTP traces URL; empty: tracing is off. */
  otlpEndpoint: string;
  otlpProtocol: OtlpProtocol;
  /** Sent with every export (a token, often): a secret, never logged or shown. */
  otlpHeaders: Array<[string, string]>;
  traceSample: TraceSample;
  traceServiceName: string;
  /** Peers whose X-Forwarded-For / Forwarded lb believes (src/edge/client-address.ts); empty: none. */
  trustedProxies: Cidr[];
  /** Edge policies (src/edge/), per pool and per route: who may come, how often, what fields change. */
  allow: Cidr[];
  deny: Cidr[];
  /** null: no rate limit. */
  rateLimit: Rate | null;
  /** 0: the rate's count. */
  rateLimitBurst: number;
  rateLimitKey: RateKey;
  requestHeaders: HeaderRules;
  responseHeaders: HeaderRules;
}

export interface PoolSpec {
  name: string;
  /** What this pool sets for itself; every other per-pool setting comes from the top level. */
  overrides: Partial<Config>;
}

export interface RouteSpec {
  /** Exact ("api.example.com") or one wildcard label and up ("*.example.com"), compared without case or port. */
  host?: string;
  /** A plain prefix of the path, as nginx's `location /api/` (end it with "/" to match whole segments only). */
  pathPrefix?: string;
  /** Remove pathPrefix before forwarding: the backend sees /users for /api/users. */
  stripPrefix?: boolean;
  /** Any of these methods (upper case). */
  methods?: string[];
  /** Every one of these headers with exactly this value (names without case). */
  headers?: Array<[string, string]>;
  pool: string;
  /** The settings this route sets for itself (those marked perRoute), over its pool's. */
  overrides?: Partial<Config>;
}

/** A host and port to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** One [[tcp]] entry: entries that share `listen` form one listener, which picks an entry by the ClientHello's name. */
export interface TcpSpec {
  listen: ListenAddress;
  pool: string;
  /** Exact names and `*.` wildcards, lower case; absent: the listener's default entry. */
  sni?: string[];
  /** A connection with no byte either way for this long is closed (ms). */
  idleTimeout: number;
}

export interface Environment {
  stdoutIsTTY: boolean;
}

/** An extra certificate, served to clients that ask for `serverName` (SNI). */
export interface SniCert {
  serverName: string;
  cert: string;
  key: string;
}

/** Whether lb serves HTTPS: with certificate files, or with certificates it obtains itself (--acme). */
export function servesTls(config: Pick<Config, "tlsCert" | "acme">): boolean {
  return Boolean(config.tlsCert) || config.acme.length > 0;
}

/** `acme = "routes"` in a list: every exact host of the route table. */
export const ACME_ROUTES = "routes";

/** The names --acme gets certificates for: as listed, "routes" replaced by the routes' exact hosts (no wildcards). */
export function acmeNames(config: Pick<Config, "acme" | "routes">): string[] {
  const names = config.acme.flatMap((name) =>
    name === ACME_ROUTES ? config.routes.flatMap(({ host }) => (host && !host.includes("*") ? [host.toLowerCase()] : [])) : [name],
  );
  return [...new Set(names)];
}

/** Where the admin API listens; null when it is off. */
export type AdminAddress = { host: string; port: number } | null;
