/** `lb backends ...`: the admin API from the terminal, for a running lb. */
import type { ArgsDef } from "citty";
import { type HelpOption, type HelpPage, parseStrict } from "../cli.ts";
import { hostInUrl } from "../config/backend-url.ts";
import { ConfigError } from "../config/load.ts";
import { adminAddress } from "../config/values.ts";
import type { backendJson } from "./views.ts";

type BackendView = ReturnType<typeof backendJson>;

/** The options every command that talks to a running lb takes. */
export const ADMIN_ARGS = {
  admin: { type: "string", valueHint: "host:port", description: "Where lb's admin API listens", default: "127.0.0.1:9090" },
  "admin-token": { type: "string", valueHint: "token", description: "Its token, if it has one (default: $LB_ADMIN_TOKEN)" },
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
  description: "Change the pool of a running lb through its admin API.",
  usage: [
    "lb backends list [--pool NAME] [--json]",
    "lb backends add <url> [--weight N] [--pool NAME]",
    "lb backends weight <id> <N>",
    "lb backends drain|enable|disable <id>",
    "lb backends remove <id> [--timeout 30s]",
  ],
  sections: [{ title: "Options", options: helpOptions(BACKENDS_ARGS) }],
  notes: ["<id> is a backend's host:port as list shows it, or its URL."],
  examples: ["lb backends list --pool api", "lb backends add http://10.0.0.5:8080 --weight 2 --pool api", "lb backends drain 10.0.0.5:8080"],
};

export type AdminCall = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** Parses a command's flags strictly (`args`: --admin, --admin-token and its own) and returns a way to call lb's admin API. */
export function adminClient(argv: string[], args: ArgsDef, command: string, env: { adminToken?: string }) {
  const parsed = parseStrict(argv, args, command);
  const address = adminAddress(parsed.admin ?? ADMIN_ARGS.admin.default);
  if ("error" in address || !address.value) throw new ConfigError(`--admin: ${"error" in address ? address.error : "cannot be off here"}`);
  const { host, port } = address.value;
  const base = `http://${hostInUrl(host)}:${port}`;
  const token = (parsed["admin-token"] as string | undefined) ?? env.adminToken ?? "";
  const call: AdminCall = (method, path, body) => request(base, token, method, path, body);
  return { args: parsed, call };
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

/** Runs one subcommand; resolves to the text to print. Bad usage throws ConfigError (exit 2). */
export async function runBackendsCommand(argv: string[], env: { adminToken?: string }): Promise<string> {
  const { args, call } = adminClient(argv, BACKENDS_ARGS, "lb backends", env);
  const [command, target] = args._;
  const id = () => {
    if (!target) throw new ConfigError(`lb backends ${command} needs a backend id (host:port); lb backends list shows them`);
    return encodeURIComponent(target);
  };

  switch (command) {
    case "list": {
      const query = args.pool ? `?pool=${encodeURIComponent(String(args.pool))}` : "";
      const { backends } = (await call("GET", `/api/backends${query}`)) as { backends: BackendView[] };
      return args.json ? JSON.stringify(backends, null, 2) : table(backends);
    }
    case "add": {
      if (!target) throw new ConfigError("lb backends add needs a URL, e.g. lb backends add http://10.0.0.5:8080");
      const weight = args.weight === undefined ? undefined : Number(args.weight);
      if (weight !== undefined && !Number.isInteger(weight)) throw new ConfigError(`--weight "${args.weight}" is not a whole number`);
      return describe(await call("POST", "/api/backends", { url: target, weight, pool: args.pool }), args.json, "added");
    }
    case "weight": {
      const weight = args._[2];
      if (!weight) throw new ConfigError("lb backends weight needs a backend id and a weight, e.g. lb backends weight 10.0.0.5:8080 5");
      if (!/^\d+$/.test(weight)) throw new ConfigError(`weight "${weight}" is not a whole number`);
      return describe(await call("PATCH", `/api/backends/${id()}`, { weight: Number(weight) }), args.json, `weight ${weight}`);
    }
    case "drain":
    case "enable":
    case "disable":
      return describe(await call("POST", `/api/backends/${id()}/${command}`), args.json, command);
    case "remove": {
      const query = args.timeout ? `?timeout=${encodeURIComponent(String(args.timeout))}` : "";
      const result = (await call("DELETE", `/api/backends/${id()}${query}`)) as { removed: string; inflightAtRemoval: number };
      if (args.json) return JSON.stringify(result, null, 2);
      const left = result.inflightAtRemoval;
      return `removed ${result.removed}${left ? ` (${left} request(s) were still in flight at the deadline)` : " (drained)"}`;
    }
    default:
      throw new ConfigError(`${command ? `unknown subcommand "${command}"` : "a subcommand is needed"}; run lb backends --help`);
  }
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
export async function runReloadCommand(argv: string[], env: { adminToken?: string }): Promise<{ stdout: string; stderr: string; code: number }> {
  const { call } = adminClient(argv, ADMIN_ARGS, "lb reload", env);
  try {
    const { summary, restartNeeded = [] } = (await call("POST", "/api/reload")) as { summary: string; restartNeeded?: string[] };
    if (restartNeeded.length === 0) return { stdout: summary, stderr: "", code: 0 };
    const waiting = `${restartNeeded.join(", ")} ${restartNeeded.length === 1 ? "changes" : "change"} only on a restart`;
    return { stdout: summary, stderr: `lb: ${waiting}: lb runs on with the running value until then`, code: EXIT_RESTART_NEEDED };
  } catch (error) {
    if (error instanceof AdminCallError && error.message.startsWith("422: ")) {
      throw new AdminCallError(`reload refused, the running config stays in force: ${error.message.slice(5)}`);
    }
    throw error;
  }
}

/** An API failure that is not the user's typing: printed as one line, exit 1. */
export class AdminCallError extends Error {
  override name = "AdminCallError";
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
    throw new AdminCallError(`cannot reach lb's admin API at ${base} (${code}); is lb running, and is --admin right?`);
  }
  const payload = (await response.json().catch(() => ({}))) as { error?: string };
  if (!response.ok) throw new AdminCallError(`${response.status}: ${payload.error ?? response.statusText}`);
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
