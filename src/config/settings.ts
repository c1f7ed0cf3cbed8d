/**
 * Every setting lb has, defined once: the command line, the config file, `--help` and the README table all come
 * from this list, so they cannot drift apart.
 */
import { type BackendSpec, checkBackendUrl } from "./backend-url.ts";
import { formatDuration, parseDuration } from "./duration.ts";

export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export const LOG_FORMATS = ["pretty", "json"] as const;
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
  retries: number;
  drainTimeout: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  accessLog: boolean;
}

/**
 * A value parsed from text (command line) or from a config file (already typed by TOML/YAML/JSON). A list setting
 * may report one problem per item, each starting with its index ("[2]: ...").
 */
type Parsed<T> = { value: T } | { error: string | string[] };

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  /** The flag name, which is also the key in a config file. */
  name: string;
  alias?: string;
  type: "string" | "boolean";
  valueHint?: string;
  description: string;
  example: string;
  /** The default; a function when it depends on the environment (a terminal or not). */
  fallback: Config[K] | ((env: Environment) => Config[K]);
  parse(value: unknown): Parsed<Config[K]>;
}

export interface Environment {
  stdoutIsTTY: boolean;
}

function duration(min: number) {
  return (value: unknown): Parsed<number> => {
    const ms = typeof value === "string" || typeof value === "number" ? parseDuration(value) : null;
    if (ms === null) return { error: `"${value}" is not a duration; write 250ms, 10s, 1m or a number of seconds` };
    if (ms < min) return { error: `${formatDuration(ms)} is too short; the least is ${formatDuration(min)}` };
    return { value: ms };
  };
}

function integer(min: number, max: number, what: string) {
  return (value: unknown): Parsed<number> => {
    const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) return { error: `"${value}" is not ${what} (a whole number from ${min} to ${max})` };
    return { value: n };
  };
}

function oneOf<T extends string>(options: readonly T[]) {
  return (value: unknown): Parsed<T> =>
    options.includes(value as T) ? { value: value as T } : { error: `"${value}" is not one of ${options.join(", ")}` };
}

function text(check: (s: string) => string | null) {
  return (value: unknown): Parsed<string> => {
    if (typeof value !== "string" || value === "") return { error: "needs a value" };
    const problem = check(value);
    return problem ? { error: problem } : { value };
  };
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
    if ("error" in checked) problems.push(`[${i}]: ${checked.error}`);
    else if (specs.some((s) => s.url === checked.spec.url)) problems.push(`[${i}]: ${checked.spec.url} is listed twice`);
    else specs.push(checked.spec);
  });
  return problems.length ? { error: problems } : { value: specs };
}

function checkBackendItem(item: unknown) {
  if (typeof item === "string") return checkBackendUrl(item);
  if (typeof item === "object" && item !== null && "url" in item && typeof item.url === "string") {
    const { url, weight, ...rest } = item as { url: string; weight?: unknown };
    const unknown = Object.keys(rest);
    if (unknown.length) return { error: `"${unknown[0]}" is not a backend setting; known: url, weight` };
    return checkBackendUrl(url, { weight });
  }
  return { error: "must be a URL, or a table with url (and weight)" };
}

export const SETTINGS: Setting[] = [
  {
    key: "port", name: "port", alias: "p", type: "string", valueHint: "port", fallback: 8000,
    description: "Port to accept client requests on; 0 picks a free one (the startup line prints it)",
    example: "--port 8000", parse: integer(0, 65535, "a port"),
  },
  {
    key: "host", name: "host", type: "string", valueHint: "address", fallback: "0.0.0.0",
    description: "Address to listen on", example: "--host 127.0.0.1", parse: text(() => null),
  },
  {
    key: "backends", name: "backends", type: "string", valueHint: "url,url", fallback: [],
    description: "Backend servers, comma-separated (or give them as arguments); #weight=N sets a weight",
    example: "--backends http://10.0.0.1:8080,http://10.0.0.2:8080", parse: backendList,
  },
  {
    key: "healthPath", name: "health-path", type: "string", valueHint: "path", fallback: "/",
    description: "Path requested on each backend by the health check; 200 means healthy",
    example: "--health-path /healthz",
    parse: text((s) => (s.startsWith("/") ? null : `"${s}" must start with /`)),
  },
  {
    key: "healthInterval", name: "health-interval", type: "string", valueHint: "duration", fallback: 10_000,
    description: "Time between health check rounds", example: "--health-interval 2s", parse: duration(100),
  },
  {
    key: "healthTimeout", name: "health-timeout", type: "string", valueHint: "duration", fallback: 2_000,
    description: "A health check that takes longer fails", example: "--health-timeout 500ms", parse: duration(10),
  },
  {
    key: "timeout", name: "timeout", type: "string", valueHint: "duration", fallback: 60_000,
    description: "Longest wait for a backend's response headers before answering 504",
    example: "--timeout 30s", parse: duration(10),
  },
  {
    key: "retries", name: "retries", type: "string", valueHint: "n", fallback: 3,
    description: "Other backends to try after a connection failure (never the same one twice)",
    example: "--retries 1", parse: integer(0, 100, "a retry count"),
  },
  {
    key: "drainTimeout", name: "drain-timeout", type: "string", valueHint: "duration", fallback: 10_000,
    description: "On SIGINT/SIGTERM, how long in-flight requests may take to finish",
    example: "--drain-timeout 30s", parse: duration(0),
  },
  {
    key: "logLevel", name: "log-level", type: "string", valueHint: LOG_LEVELS.join("|"), fallback: "info",
    description: "Least important messages to print", example: "--log-level debug", parse: oneOf(LOG_LEVELS),
  },
  {
    key: "logFormat", name: "log-format", type: "string", valueHint: LOG_FORMATS.join("|"),
    fallback: (env) => (env.stdoutIsTTY ? "pretty" : "json"),
    description: "Log lines for people or for machines (default: pretty on a terminal, json otherwise)",
    example: "--log-format json", parse: oneOf(LOG_FORMATS),
  },
  {
    key: "accessLog", name: "access-log", type: "boolean", fallback: true,
    description: "One line per request on stdout (--no-access-log turns it off)",
    example: "--no-access-log", parse: boolean,
  },
];

/** The default as a person would write it ("10s", not 10000); empty when it depends on the environment. */
export function describeDefault(setting: Setting): string {
  const { fallback } = setting;
  if (typeof fallback === "function") return "";
  if (Array.isArray(fallback)) return "";
  return setting.valueHint === "duration" ? formatDuration(fallback as number) : String(fallback);
}
