/**
 * `lb validate` (also `lb --check`): checks a config file and the flags beside it as lb would at startup, without
 * starting anything — nginx -t, haproxy -c and caddy validate are the models. Exit 0 with a one-line summary, or 2
 * with every problem on its own line, each with its place (file:line where the file says it).
 */
import type { ArgsDef } from "citty";
import { helpOptions } from "../admin/client.ts";
import { type HelpPage, parseCommandLine } from "./cli.ts";
import { environmentLayers } from "../config/environment.ts";
import { loadHooks } from "../hooks/load.ts";
import { plural } from "../pool/pool-log.ts";
import { ConfigError, type Layer, checkConfig, readConfigFile } from "../config/load.ts";
import { namedPools } from "../config/pools.ts";
import { formatListen } from "../config/tcp.ts";
import type { Config } from "../config/types.ts";

const CONFIG_FILE = /\.(toml|ya?ml|json)$/i;

export const VALIDATE_ARGS = {
  config: { type: "string", valueHint: "file", description: "The config file to check (TOML, YAML or JSON)" },
} as const satisfies ArgsDef;

export const VALIDATE_HELP: HelpPage = {
  description: "Checks a config file, with any flags given beside it, as lb would at startup, and starts nothing. " +
    "Exit 0 when lb would start with it; exit 2 with every problem on its own line.",
  usage: ["lb validate <file> [options]", "lb validate --config <file> [options]", "lb --config <file> --check [options]"],
  sections: [{ title: "Options", options: helpOptions(VALIDATE_ARGS) }],
  notes: [
    "Any of lb's options may be given too: they are checked together with the file, as they would be used.",
    'A hooks file is loaded as lb would load it, and each pool it names as ctx.pool = "name" must be in the config.',
  ],
  examples: ["lb validate /etc/lb/lb.toml", "lb --config lb.yaml --check --port 8080"],
};

export interface Validation {
  code: 0 | 2;
  stdout: string;
  stderr: string;
}

export async function validateCommand(argv: string[], vars: Record<string, string | undefined>): Promise<Validation> {
  const commandLine = parseCommandLine("lb validate", argv);
  const [first, ...rest] = commandLine.positionals;
  // `lb validate lb.toml`: without --config, a first argument named as a config file is the file; the rest (and with
  // --config, every argument) are backends, as on lb's own command line.
  const positionalFile = commandLine.configPath === undefined && first !== undefined && CONFIG_FILE.test(first) ? first : undefined;
  const backends = positionalFile ? rest : commandLine.positionals;
  if (backends.length) commandLine.layer.values.backends = backends;
  const path = commandLine.configPath ?? positionalFile;
  if (!path) throw new ConfigError("lb validate needs a config file: lb validate lb.toml (or --config lb.toml)");
  let file: Layer;
  try {
    file = await readConfigFile(path);
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n` };
  }
  const { config, problems } = checkConfig([file, ...environmentLayers(vars), commandLine.layer], { stdoutIsTTY: false });
  if (config.hooks) problems.push(...(await hooksProblems(config, problems.length === 0)));
  if (problems.length) return { code: 2, stdout: "", stderr: problems.map((p) => `${p}\n`).join("") };
  return { code: 0, stdout: `${path}: OK (${describePools(config)}, port ${config.port})\n`, stderr: "" };
}

/**
 * Loading runs the hooks file's top-level code, as lb's start would: a broken hooks file fails here, not at startup.
 * Then each pool the hooks' code names in a plain `ctx.pool = "name"` must be one of the config's (checked only when
 * the config's own pools are sound); a name computed at run time can only be found on a request (lb logs it, with
 * the pools it has, and answers 500).
 */
async function hooksProblems(config: Config, poolsKnown: boolean): Promise<string[]> {
  let sources: readonly string[];
  try {
    ({ sources } = await loadHooks(config.hooks));
  } catch (error) {
    return [(error as Error).message];
  }
  if (!poolsKnown) return [];
  const pools = namedPools(config).map((pool) => pool.name);
  const problems: string[] = [];
  for (const source of sources) {
    for (const { line, pool } of poolAssignments(await Bun.file(source).text())) {
      if (!pools.includes(pool)) problems.push(`${source}:${line}: hooks: ctx.pool = "${pool}" names no pool; the pools are ${pools.join(", ")}`);
    }
  }
  return problems;
}

/** `.pool = "name"` with a literal name. */
const POOL_ASSIGNMENT = /\.pool\s*=(?!=)\s*(["'`])([^"'`$\\\n]*)\1/g;
/** A line of a block comment (a doc comment's example), or the part of a line after `//`. */
const COMMENT = /^\s*(?:\/\*|\*).*$|\/\/.*$/;

function poolAssignments(code: string): Array<{ line: number; pool: string }> {
  return code.split("\n").flatMap((text, index) =>
    [...text.replace(COMMENT, "").matchAll(POOL_ASSIGNMENT)].map((match) => ({ line: index + 1, pool: match[2]! })),
  );
}

/** "3 backends, policy round-robin" for one pool; "2 pools (api: 2 backends, web: 1 backend), 3 routes" for several. */
function describePools(config: Config): string {
  const pools = namedPools(config);
  const listeners = new Set(config.tcp.map(({ listen }) => formatListen(listen))).size;
  const tcp = listeners ? `, ${plural(listeners, "tcp listener")}` : "";
  if (pools.length === 1) return `${plural(pools[0]!.config.backends.length, "backend")}, policy ${pools[0]!.config.policy}${tcp}`;
  const each = pools.map(({ name, config: own }) => `${name}: ${plural(own.backends.length, "backend")}`);
  return `${plural(pools.length, "pool")} (${each.join(", ")}), ${plural(config.routes.length, "route")}${tcp}`;
}
