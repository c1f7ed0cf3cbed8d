/** `lb backends ...`, `lb status`, `lb reload`: the admin API from the terminal, for a running lb. */
import type { ArgsDef } from "citty";
import { type HelpOption, type HelpPage, parseStrict } from "../cli/cli.ts";
import { WEIGHT_PROBLEM, hostInUrl, parseWeight } from "../config/backend-url.ts";
import { parseDuration } from "../config/duration.ts";
import { envName } from "../config/environment.ts";
import { ConfigError, readConfigFile } from "../config/load.ts";
import { SETTINGS, describeDefault } from "../config/settings.ts";
import type { AdminAddress } from "../config/types.ts";
import { adminAddress, adminToken } from "../config/values.ts";
import type { backendJson } from "./views.ts";

type BackendView = ReturnType<typeof backendJson>;

/** The environment, as process.env gives it: LB_ADMIN and LB_ADMIN_TOKEN are read as lb itself reads them. */
export type Environment = Record<string, string | undefined>;

const ADMIN_SETTING = SETTINGS.find((setting) => setting.name === "admin")!;

/** The options every command that talks to a running lb takes: the admin address and token, as lb itself takes them. */
export const ADMIN_ARGS = {
  admin: {
    type: "string",
    valueHint: "host:port",
    description: `Where lb's admin API listens (default: $LB_ADMIN, else admin in the --config file, else ${describeDefault(ADMIN_SETTING)})`,
  },
  "admin-token": { type: "string", valueHint: "token", description: "Its token, if it has one (default: $LB_ADMIN_TOKEN, else admin-token in the --config file)" },
  config: { type: "string", valueHint: "file", description: "lb's config file: its admin and admin-token settings say where to connect" },
} as const satisfies ArgsDef;

const JSON_ARG = { json: { type: "boolean", description: "Print JSON instead of a table" } } as const satisfies ArgsDef;

export const BACKENDS_ARGS = {
  ...ADMIN_ARGS,
  ...JSON_ARG,
  pool: { type: "string", valueHint: "name", description: "With list: only this pool's backends; with add: the pool to add to" },
  weight: { type: "string", valueHint: "n", description: "With add: the new backend's weight (1-1000)" },
  timeout: { type: "string", valueHint: "duration", description: "With remove: the longest wait for its requests (default: lb's --drain-timeout)" },
} as const satisfies ArgsDef;

/** What `lb backends` does, the first word after it. */
export const BACKEND_ACTIONS = ["list", "add", "weight", "drain", "enable", "disable", "remove"];

export const BACKENDS_HELP: HelpPage = {
  description: "List or change the pool of a running lb through its admin API.",
  usage: [
    "lb backends [list] [--pool NAME] [--json]",
    "lb backends add <url> [--weight N] [--pool NAME]",
    "lb backends weight <id> <N>",
    "lb backends drain|enable|disable <id>",
    "lb backends remove <id> [--timeout 30s]",
  ],
  sections: [{ title: "Options", options: helpOptions(BACKENDS_ARGS) }],
  notes: [
    "<id> is a backend's host:port as list shows it, or its URL.",
    "The admin API is found as lb finds it: --admin and --admin-token, else LB_ADMIN and LB_ADMIN_TOKEN, else the " +
      "admin and admin-token settings of the --config file (the one lb runs with).",
  ],
  examples: [
    "lb backends --config /etc/lb/lb.toml",
    "lb backends list --pool api",
    "lb backends add http://10.0.0.5:8080 --weight 2 --pool api",
    "lb backends drain 10.0.0.5:8080",
  ],
};

export type AdminCall = (method: string, path: string, body?: unknown) => Promise<unknown>;

/**
 * Parses a command's flags strictly (`args`: ADMIN_ARGS and its own) and returns a way to call lb's admin API, found
 * where lb itself takes its address and token from: flags, then the environment, then the config file.
 */
export async function adminClient(argv: string[], args: ArgsDef, command: string, env: Environment) {
  const parsed = parseStrict(argv, args, command);
  const file = typeof parsed.config === "string" ? await readConfigFile(parsed.config) : null;
  /** The setting's value from the first place that gives it, and that place's name for messages. */
  const given = (name: "admin" | "admin-token") => {
    const variable = envName({ name });
    if (parsed[name] !== undefined) return { raw: parsed[name], where: `--${name}` };
    if (env[variable]) return { raw: env[variable], where: `environment ${variable}` };
    if (file?.values[name] !== undefined) return { raw: file.values[name], where: `${file.source}: ${name}` };
    return null;
  };
  const address = given("admin");
  const base = adminBase(address ? settingValue(adminAddress(address.raw), address.where) : (ADMIN_SETTING.fallback as AdminAddress), address?.where);
  const token = given("admin-token");
  const tokenText = token ? settingValue(adminToken(token.raw), token.where) : "";
  const call: AdminCall = (method, path, body) => request(base, tokenText, method, path, body);
  return { args: parsed, call };
}

/** A parsed setting's value, or a usage error that names where it was given. */
function settingValue<T>(parsed: { value: T } | { error: string | string[] }, where: string): T {
  if ("error" in parsed) throw new ConfigError(`${where}: ${[parsed.error].flat().join("; ")}`);
  return parsed.value;
}

/** The URL to call lb's admin API at; a wildcard listener (0.0.0.0, ::) is reached on loopback. */
function adminBase(address: AdminAddress, where = "--admin"): string {
  if (!address) throw new ConfigError(`${where} is off: that lb has no admin API to reach`);
  const host = address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host;
  return `http://${hostInUrl(host)}:${address.port}`;
}

/** citty argument definitions as --help options. */
export function helpOptions(args: ArgsDef): HelpOption[] {
  return Object.entries(args).map(([name, def]) => ({
    flag: `--${name}`,
    hint: "valueHint" in def ? def.valueHint : undefined,
    description: def.description ?? "",
    shownDefault: "default" in def && typeof def.default === "string" ? def.default : undefined,
  }));
}

/** Runs one subcommand (list when none is given); resolves to the text to print. Bad usage throws ConfigError (exit 2). */
export async function runBackendsCommand(argv: string[], env: Environment): Promise<string> {
  const { args, call } = await adminClient(argv, BACKENDS_ARGS, "lb backends", env);
  const [command = "list", target] = args._;
  if (!BACKEND_ACTIONS.includes(command)) throw new ConfigError(`unknown subcommand "${command}"; run lb backends --help`);
  if (command === "list") {
    const query = args.pool ? `?pool=${encodeURIComponent(String(args.pool))}` : "";
    const { backends } = (await call("GET", `/api/backends${query}`)) as { backends: BackendView[] };
    return args.json ? JSON.stringify(backends, null, 2) : table(backends);
  }
  if (command === "add") return addBackend(call, target, args);
  if (!target) throw new ConfigError(`lb backends ${command} needs a backend id (host:port); lb backends list shows them`);
  const path = `/api/backends/${encodeURIComponent(target)}`;
  // The API's 404 names its own endpoint; the terminal gets the command that lists the ids.
  const onBackend = (method: string, suffix = "", body?: unknown) =>
    call(method, path + suffix, body).catch((error: unknown) => {
      if (error instanceof AdminCallError && error.status === 404) throw new AdminCallError(`no backend ${target}; lb backends list shows them`, 404);
      throw error;
    });
  switch (command) {
    case "weight": {
      const weight = args._[2];
      if (!weight) throw new ConfigError("lb backends weight needs a backend id and a weight, e.g. lb backends weight 10.0.0.5:8080 5");
      if (parseWeight(weight) === null) throw new ConfigError(`"${weight}": ${WEIGHT_PROBLEM}`);
      return describe(await onBackend("PATCH", "", { weight: Number(weight) }), args.json, `weight ${weight}`);
    }
    case "remove": {
      if (args.timeout !== undefined && parseDuration(String(args.timeout)) === null) {
        throw new ConfigError(`--timeout "${args.timeout}" is not a duration; write 250ms, 10s or 1m`);
      }
      const query = args.timeout ? `?timeout=${encodeURIComponent(String(args.timeout))}` : "";
      const result = (await onBackend("DELETE", query)) as { removed: string; inflightAtRemoval: number };
      if (args.json) return JSON.stringify(result, null, 2);
      const left = result.inflightAtRemoval;
      return `removed ${result.removed}${left ? ` (${left} request(s) were still in flight at the deadline)` : " (drained)"}`;
    }
    default: // drain, enable, disable
      return describe(await onBackend("POST", `/${command}`), args.json, command);
  }
}

/**
 * `lb backends add <url>`: the weight is checked here, and the pool against the pools lb has, so that a mistake is
 * told in the command's words (--pool api), not in the API's JSON.
 */
async function addBackend(call: AdminCall, url: string | undefined, args: Record<string, unknown>): Promise<string> {
  if (!url) throw new ConfigError("lb backends add needs a URL, e.g. lb backends add http://10.0.0.5:8080");
  const weight = args.weight === undefined ? undefined : parseWeight(String(args.weight));
  if (weight === null) throw new ConfigError(`--weight "${args.weight}": ${WEIGHT_PROBLEM}`);
  const { pools } = (await call("GET", "/api/stats")) as { pools: Array<{ name: string }> };
  const names = pools.map((pool) => pool.name);
  const pool = args.pool === undefined ? undefined : String(args.pool);
  if (pool === undefined && names.length > 1) {
    throw new ConfigError(`this lb has several pools (${names.join(", ")}): name one, e.g. lb backends add ${url} --pool ${names[0]}`);
  }
  if (pool !== undefined && !names.includes(pool)) throw new ConfigError(`--pool ${pool}: no such pool; this lb's pools are ${names.join(", ")}`);
  return describe(await call("POST", "/api/backends", { url, weight, pool }), args.json, "added");
}

/** `lb reload`'s exit status when the reload was applied but a setting it changes only takes effect on a restart. */
export const EXIT_RESTART_NEEDED = 3;

export const RELOAD_HELP: HelpPage = {
  description: "Makes a running lb read its config file again and apply it (as SIGHUP does), and says what changed.",
  usage: ["lb reload [--admin host:port] [--admin-token token]"],
  sections: [{ title: "Options", options: helpOptions(ADMIN_ARGS) }],
  notes: [
    "Exit 0 when the new config was applied; 1 (the reason on one line) when it was refused: the running config stays; " +
      `${EXIT_RESTART_NEEDED} when it was applied except settings only a restart changes (port, host, admin, TLS files, ` +
      "workers, logging...), which keep their running values: the line on stderr names them.",
  ],
};

/** `lb reload`: POST /api/reload; resolves to the summary of what changed, and a line on what waits for a restart. */
export async function runReloadCommand(argv: string[], env: Environment): Promise<{ stdout: string; stderr: string; code: number }> {
  const { call } = await adminClient(argv, ADMIN_ARGS, "lb reload", env);
  try {
    const { summary, restartNeeded = [] } = (await call("POST", "/api/reload")) as { summary: string; restartNeeded?: string[] };
    if (restartNeeded.length === 0) return { stdout: summary, stderr: "", code: 0 };
    const waiting = `${restartNeeded.join(", ")} ${restartNeeded.length === 1 ? "changes" : "change"} only on a restart`;
    return { stdout: summary, stderr: `lb: ${waiting}: lb runs on with the running value until then`, code: EXIT_RESTART_NEEDED };
  } catch (error) {
    if (error instanceof AdminCallError && error.status === 422) {
      throw new AdminCallError(`reload refused, the running config stays in force: ${error.message}`, 422);
    }
    throw error;
  }
}

/** An API failure that is not the user's typing: printed as one line, exit 1. */
export class AdminCallError extends Error {
  override name = "AdminCallError";

  constructor(
    message: string,
    /** The API's HTTP status; absent when lb could not be reached. */
    readonly status?: number,
  ) {
    super(message);
  }
}

async function request(base: string, token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(base + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    const code = (error as { code?: string }).code ?? (error as Error).message;
    throw new AdminCallError(`cannot reach lb's admin API at ${base} (${code}); is lb running, and is --admin (or LB_ADMIN, or --config) right?`);
  }
  const payload = (await response.json().catch(() => ({}))) as { error?: string };
  if (response.status === 401) {
    const problem = token ? "refused the token given" : "needs a token";
    throw new AdminCallError(`lb's admin API at ${base} ${problem}: give lb's with --admin-token, LB_ADMIN_TOKEN or the --config file`, 401);
  }
  if (!response.ok) throw new AdminCallError(payload.error ?? `${response.status} ${response.statusText}`, response.status);
  return payload;
}

function describe(backend: unknown, asJson: unknown, what: string): string {
  const view = backend as BackendView;
  return asJson ? JSON.stringify(view, null, 2) : `${what}: ${view.id} (${view.url}) is ${view.state}`;
}

function table(backends: BackendView[]): string {
  const header = ["ID", "POOL", "STATE", "WEIGHT", "INFLIGHT", "REQUESTS", "ERRORS", "RETRIES", "LAST CHECK"];
  return formatTable(header, backends.map((b) => [
    b.id,
    b.pool,
    b.state,
    String(b.weight),
    String(b.inflight),
    String(b.requests),
    String(b.errors),
    String(b.retries),
    b.lastCheck ? `${b.lastCheck.ok ? "pass" : "fail"}: ${b.lastCheck.reason}` : "-",
  ]));
}

/**
 * Columns padded to their widest cell; `paint` may colour a cell (the padding is computed on the plain text, so
 * colour codes do not break the alignment).
 */
export function formatTable(header: string[], rows: string[][], paint: (cell: string, column: number) => string = (c) => c): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], painted: boolean) =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return painted ? padded.replace(c, paint(c, i)) : padded;
      })
      .join("  ");
  return [line(header, false), ...rows.map((r) => line(r, true))].join("\n");
}
