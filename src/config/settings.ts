/**
 * Every setting lb has, defined once: the command line, the config file, `--help` and the README table all come
 * from this list, so they cannot drift apart.
 */
import { type BackendSpec, type SpecCheck, WEIGHT_PROBLEM, checkBackendUrl, parseWeight } from "./backend-url.ts";
import { ACCESS_FORMATS, type AccessFormat } from "../access-log.ts";
import { type HashKey, parseHashKey } from "./hash-key.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { PoolSpec, RouteSpec } from "./pools.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export const LOG_FORMATS = ["pretty", "json"] as const;
export const POLICIES = ["round-robin", "least-connections", "random", "p2c", "ewma", "hash"] as const;
export const HEALTH_METHODS = ["GET", "HEAD", "OPTIONS", "POST"] as const;
/** auto: HTTP/2 by ALPN when lb serves TLS; on: also h2c (clear text, by prior knowledge); off: HTTP/1.1 only. */
export const HTTP2_MODES = ["auto", "on", "off"] as const;
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
  /** The hooks file (src/hooks/); empty: none. */
  hooks: string;
  /** The longest an async hook may take before its request gets an error from lb. */
  hooksTimeout: number;
}

/**
 * A value parsed from text (command line) or from a config file (already typed by TOML/YAML/JSON). A list setting
 * may report one problem per item, each starting with its index ("[2]: ...").
 */
type Parsed<T> = { value: T } | { error: string | string[] };

/** Where --help lists a setting. */
export const SETTING_GROUPS = {
  listening: "Listening",
  backends: "Backends and forwarding",
  health: "Health checks and ejection",
  balancing: "Balancing",
  limits: "Limits",
  tls: "TLS",
  admin: "Admin API",
  logging: "Logging",
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
  /** The default; a function when it depends on the environment (a terminal or not). */
  fallback: Config[K] | ((env: Environment) => Config[K]);
  /** How `--help` and the README write the default, where the value itself would not say it well ("" shows none). */
  shownDefault?: string;
  parse(value: unknown): Parsed<Config[K]>;
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

export interface Environment {
  stdoutIsTTY: boolean;
}

/** An extra certificate, served to clients that ask for `serverName` (SNI). */
export interface SniCert {
  serverName: string;
  cert: string;
  key: string;
}

/** Where the admin API listens; null when it is off. */
export type AdminAddress = { host: string; port: number } | null;

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A JSON Schema fragment describing what a setting accepts in a config file (for editors; see schema.ts). */
export type JsonSchema = Record<string, unknown>;

/** A parser that carries the schema of what it accepts, so the JSON Schema comes from the same definitions. */
type Described<T extends (value: unknown) => Parsed<unknown>> = T & { readonly schema: JsonSchema };

function described<T extends (value: unknown) => Parsed<unknown>>(parse: T, schema: JsonSchema): Described<T> {
  return Object.assign(parse, { schema });
}

export function schemaOf(setting: Setting): JsonSchema {
  return (setting.parse as Partial<Described<Setting["parse"]>>).schema ?? {};
}

const DURATION_SCHEMA: JsonSchema = {
  anyOf: [
    { type: "string", pattern: "^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*)+$|^\\s*\\d+(\\.\\d+)?\\s*$" },
    { type: "number", minimum: 0 },
  ],
};

function duration(min: number, max = Infinity) {
  return described((value: unknown): Parsed<number> => {
    const ms = typeof value === "string" || typeof value === "number" ? parseDuration(value) : null;
    if (ms === null) return { error: `"${value}" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds` };
    if (ms < min) return { error: `${formatDuration(ms)} is too short; the least is ${formatDuration(min)}` };
    if (ms > max) return { error: `${formatDuration(ms)} is too long; the most is ${formatDuration(max)}` };
    return { value: ms };
  }, DURATION_SCHEMA);
}

function integer(min: number, max: number, what: string) {
  return described((value: unknown): Parsed<number> => {
    const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) return { error: `"${value}" is not ${what} (a whole number from ${min} to ${max})` };
    return { value: n };
  }, { anyOf: [{ type: "integer", minimum: min, maximum: max }, { type: "string", pattern: "^\\d+$" }] });
}

function oneOf<T extends string>(options: readonly T[]) {
  return described(
    (value: unknown): Parsed<T> =>
      options.includes(value as T) ? { value: value as T } : { error: `"${value}" is not one of ${options.join(", ")}` },
    { enum: [...options] },
  );
}

function text(check: (s: string) => string | null) {
  return described((value: unknown): Parsed<string> => {
    if (typeof value !== "string" || value === "") return { error: "needs a value" };
    const problem = check(value);
    return problem ? { error: problem } : { value };
  }, { type: "string", minLength: 1 });
}

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** A size in bytes: a number, or text like 512k, 10mb, 1g (binary units); 0 means no limit. */
const byteSize = (value: unknown): Parsed<number> => {
  const match = typeof value === "number" ? [String(value), String(value), ""] : typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value) : null;
  const unit = SIZE_UNITS[(match?.[2] ?? "").toLowerCase()];
  if (!match || unit === undefined) return { error: `"${value}" is not a size; write 512k, 10mb, 1g or a number of bytes` };
  return { value: Math.round(Number(match[1]) * unit) };
};

/** "auto" (one per CPU) or a number of worker processes. */
const workerCount = described(
  (value: unknown): Parsed<number> => {
    if (value === "auto") return { value: availableParallelism() };
    const parsed = integer(1, 64, "a worker count")(value);
    return "error" in parsed ? { error: `"${value}" is not a worker count; write auto or a whole number from 1 to 64` } : parsed;
  },
  { anyOf: [{ const: "auto" }, { type: "integer", minimum: 1, maximum: 64 }, { type: "string", pattern: "^\\d+$" }] },
);

function percent(value: unknown): Parsed<number> {
  const text = typeof value === "string" ? value.trim().replace(/%$/, "") : value;
  const parsed = integer(0, 100, "a percentage")(text);
  return "error" in parsed ? { error: `"${value}" is not a percentage (0 to 100)` } : parsed;
}

/** "200", "200-399" or a comma-separated mix: the statuses a health check accepts. */
function statusRanges(value: unknown): Parsed<StatusRanges> {
  const text = typeof value === "number" ? String(value) : value;
  const items = Array.isArray(text) ? text.map(String) : typeof text === "string" ? text.split(",") : null;
  const ranges: StatusRanges = [];
  for (const item of items ?? [""]) {
    const match = /^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$/.exec(item);
    const [low, high] = match ? [Number(match[1]), Number(match[2] ?? match[1])] : [0, -1];
    if (low > high) return { error: `"${value}" is not a status list; write 200, 200-399 or 200,204,301-302` };
    ranges.push([low, high]);
  }
  return { value: ranges };
}

/** Extra request headers: "Name: value" (repeatable on the command line), a list of those, or a table. */
function headerList(value: unknown): Parsed<Array<[string, string]>> {
  const entries: unknown[] = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null
      ? Object.entries(value).map(([name, v]) => `${name}: ${v}`)
      : [value];
  const headers: Array<[string, string]> = [];
  for (const entry of entries) {
    const match = typeof entry === "string" ? /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(entry.trim()) : null;
    if (!match) return { error: `"${entry}" is not a header; write "Name: value"` };
    headers.push([match[1]!, match[2]!]);
  }
  return { value: headers };
}

function optionalText(check: (s: string) => string | null) {
  return described((value: unknown): Parsed<string> => {
    if (typeof value !== "string") return { error: "must be text" };
    const problem = value === "" ? null : check(value);
    return problem ? { error: problem } : { value };
  }, { type: "string" });
}

/** A token with no blank around it: a blank one would protect nothing, and no HTTP client sends the spaces. */
const adminToken = described((value: unknown): Parsed<string> => {
  if (typeof value !== "string") return { error: "must be text" };
  const problem = tokenProblem(value);
  return problem ? { error: problem } : { value };
}, { type: "string", pattern: "^\\S(?:.*\\S)?$" });

export function tokenProblem(token: string): string | null {
  if (token.trim() === "") return "is empty; give a long random token (openssl rand -hex 16), or leave it out";
  if (token.trim() !== token) return "begins or ends with blank space; remove it (clients do not send it)";
  return null;
}

/** `host:port`, `[::1]:port`, or `off`. */
export function adminAddress(value: unknown): Parsed<AdminAddress> {
  if (value === "off" || value === false) return { value: null };
  const match = typeof value === "string" ? /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim()) : null;
  const port = Number(match?.[3]);
  if (!match || port > 65535) return { error: `"${value}" is not an address; write 127.0.0.1:9090 (or off)` };
  return { value: { host: match[1] ?? match[2]!, port } };
}

/** `name=cert.pem,key.pem` (command line, repeatable) or tables `{ server-name, cert, key }` (config file). */
function sniList(value: unknown): Parsed<SniCert[]> {
  const items = Array.isArray(value) ? value : [value];
  const certs: SniCert[] = [];
  const problems: string[] = [];
  items.forEach((item, i) => {
    const fromText = typeof item === "string" ? /^([A-Za-z0-9*.-]+)=([^,]+),(.+)$/.exec(item) : null;
    const table = typeof item === "object" && item !== null ? (item as Record<string, unknown>) : null;
    const entry = fromText
      ? { serverName: fromText[1]!, cert: fromText[2]!, key: fromText[3]! }
      : table && typeof table["server-name"] === "string" && typeof table.cert === "string" && typeof table.key === "string"
        ? { serverName: table["server-name"], cert: table.cert, key: table.key }
        : null;
    if (entry) certs.push(entry);
    else problems.push(`[${i}]: write server.name=cert.pem,key.pem (or a table with server-name, cert and key)`);
  });
  return problems.length ? { error: problems } : { value: certs };
}

function boolean(value: unknown): Parsed<boolean> {
  if (typeof value === "boolean") return { value };
  if (value === "true" || value === "false") return { value: value === "true" };
  return { error: `"${value}" is not true or false` };
}

/**
 * Backends arrive as a list (config file: URLs or tables with url and weight), or as comma-separated text
 * (`--backends a,b`).
 */
function backendList(value: unknown): Parsed<BackendSpec[]> {
  const items = typeof value === "string" ? value.split(",").filter((s) => s.trim() !== "") : value;
  if (!Array.isArray(items)) return { error: "must be a list of URLs" };
  const specs: BackendSpec[] = [];
  const problems: string[] = [];
  items.forEach((item, i) => {
    const checked = checkBackendItem(item);
    if ("error" in checked) problems.push(`[${i}]${checked.error}`);
    else if (specs.some((s) => s.url === checked.spec.url)) problems.push(`[${i}]: ${checked.spec.url} is listed twice`);
    else specs.push(checked.spec);
  });
  return problems.length ? { error: problems } : { value: specs };
}

/** One entry of the backends list: a URL, or a table whose problems name their field (`[2].url: ...`). */
function checkBackendItem(item: unknown): SpecCheck {
  if (typeof item === "string") {
    const checked = checkBackendUrl(item);
    return "error" in checked ? { error: `: ${checked.error}` } : checked;
  }
  if (typeof item !== "object" || item === null || Array.isArray(item)) return { error: ": must be a URL, or a table with url (and weight)" };
  const { url, weight, resolve, ...rest } = item as { url?: unknown; weight?: unknown; resolve?: unknown };
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) return { error: `.${unknown}: not a backend setting; known: url, weight, resolve` };
  if (typeof url !== "string") return { error: ".url: missing; write url = \"http://10.0.0.5:8080\"" };
  if (resolve !== undefined && typeof resolve !== "boolean") return { error: ".resolve: must be true or false" };
  const checked = checkBackendUrl(url, resolve === undefined ? {} : { resolve });
  if ("error" in checked) return { error: `.url: ${checked.error}` };
  const parsedWeight = parseWeight(weight ?? checked.spec.weight);
  return parsedWeight === null ? { error: `.weight: ${WEIGHT_PROBLEM}` } : { spec: { ...checked.spec, weight: parsedWeight } };
}

described(percent, { anyOf: [{ type: "integer", minimum: 0, maximum: 100 }, { type: "string", pattern: "^\\d{1,3}%?$" }] });
described(statusRanges, {
  anyOf: [{ type: "integer" }, { type: "string" }, { type: "array", items: { anyOf: [{ type: "integer" }, { type: "string" }] } }],
});
described(headerList, {
  anyOf: [
    { type: "string" },
    { type: "array", items: { type: "string" } },
    { type: "object", additionalProperties: { type: "string" } },
  ],
});
described(adminAddress, { anyOf: [{ type: "string" }, { const: false }] });
described(boolean, { type: "boolean" });
described(byteSize, { anyOf: [{ type: "integer", minimum: 0 }, { type: "string", pattern: "^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][bB]?|[bB])?\\s*$" }] });
described(sniList, {
  anyOf: [
    { type: "string" },
    {
      type: "array",
      items: {
        anyOf: [
          { type: "string" },
          {
            type: "object",
            properties: { "server-name": { type: "string" }, cert: { type: "string" }, key: { type: "string" } },
            required: ["server-name", "cert", "key"],
            additionalProperties: false,
          },
        ],
      },
    },
  ],
});
described(backendList, {
  anyOf: [
    { type: "string" },
    {
      type: "array",
      items: {
        anyOf: [
          { type: "string", description: "http://host:port, optionally #weight=N" },
          {
            type: "object",
            properties: {
              url: { type: "string" },
              weight: { type: "integer", minimum: 1, maximum: 1000 },
              resolve: { type: "boolean", description: "re-resolve the host name: one backend per address" },
            },
            required: ["url"],
            additionalProperties: false,
          },
        ],
      },
    },
  ],
});

const hashKeySetting = described(
  (value: unknown): Parsed<HashKey> => {
    const key = typeof value === "string" ? parseHashKey(value) : null;
    return key ? { value: key } : { error: `"${value}" is not a hash key; write ip, path, header:NAME or cookie:NAME` };
  },
  { type: "string", pattern: "^(ip|path|header:.+|cookie:.+)$" },
);

/** The settings as written below: a setting's name is its key in kebab case unless it says otherwise. */
type SettingSpec = { [K in keyof Config]: Omit<Setting<K>, "name"> & { name?: string } }[keyof Config];

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
    description: "How a backend is chosen for each request (see the README for when to use which)",
    example: "--policy least-connections", parse: oneOf(POLICIES),
  },
  {
    key: "hashKey", perPool: true, group: "balancing", type: "string", valueHint: "ip|path|header:NAME|cookie:NAME", fallback: { kind: "ip" },
    description: "What --policy hash hashes; requests without it are balanced round robin",
    example: "--hash-key header:X-User",
    parse: hashKeySetting,
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
    key: "admin", group: "admin", restart: true, type: "string", valueHint: "host:port|off", fallback: { host: "127.0.0.1", port: 9090 },
    shownDefault: "127.0.0.1:9090",
    description: "Where the admin API listens (loopback unless a token is set); off turns it off",
    example: "--admin 127.0.0.1:9090", parse: adminAddress,
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

export const SETTINGS: Setting[] = SPECS.map((spec) => ({ ...spec, name: spec.name ?? kebab(spec.key) }) as Setting);

/** The default as a person would write it ("10s", not 10000); empty when it depends on the environment. */
export function describeDefault(setting: Setting): string {
  const { fallback, shownDefault } = setting;
  if (shownDefault !== undefined) return shownDefault;
  if (typeof fallback === "function" || typeof fallback === "object" || fallback === "") return "";
  return setting.valueHint === "duration" ? formatDuration(fallback as number) : String(fallback);
}
