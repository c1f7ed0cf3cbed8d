/**
 * `lb validate` (also `lb --check`): checks a config file and the flags beside it as lb would at startup, without
 * starting anything — nginx -t, haproxy -c and caddy validate are the models. Exit 0 with a one-line summary, or 2
 * with every problem on its own line, each with its place (file:line where the file says it).
 */
import type { ArgsDef } from "citty";
import { helpOptions } from "./admin/client.ts";
import { type HelpPage, parseCommandLine } from "./cli.ts";
import { environmentLayer } from "./config/environment.ts";
import { loadHooks } from "./hooks/load.ts";
import { plural } from "./pool-log.ts";
import { ConfigError, type Layer, checkConfig, readConfigFile } from "./config/load.ts";
import { namedPools } from "./config/pools.ts";
import type { Config } from "./config/types.ts";

export const VALIDATE_ARGS = {
  config: { type: "string", valueHint: "file", description: "The config file to check (TOML, YAML or JSON)" },
} as const satisfies ArgsDef;

export const VALIDATE_HELP: HelpPage = {
  description: "Checks a config file, with any flags given beside it, as lb would at startup, and starts nothing. " +
    "Exit 0 when lb would start with it; exit 2 with every problem on its own line.",
  usage: ["lb validate --config <file> [options]", "lb --config <file> --check [options]"],
  sections: [{ title: "Options", options: helpOptions(VALIDATE_ARGS) }],
  notes: ["Any of lb's options may be given too: they are checked together with the file, as they would be used."],
  examples: ["lb validate --config /etc/lb/lb.toml", "lb --config lb.yaml --check --port 8080"],
};

export interface Validation {
  code: 0 | 2;
  stdout: string;
  stderr: string;
}

export async function validateCommand(argv: string[], vars: Record<string, string | undefined>): Promise<Validation> {
  const commandLine = parseCommandLine("lb validate", argv);
  if (commandLine.positionals.length) commandLine.layer.values.backends = commandLine.positionals;
  const path = commandLine.configPath;
  if (!path) throw new ConfigError("lb validate needs --config <file>, e.g. lb validate --config lb.toml");
  let file: Layer;
  try {
    file = await readConfigFile(path);
  } catch (error) {
    return { code: 2, stdout: "", stderr: `${(error as Error).message}\n` };
  }
  const { config, problems } = checkConfig([file, environmentLayer(vars), commandLine.layer], { stdoutIsTTY: false });
  if (problems.length) return { code: 2, stdout: "", stderr: problems.map((p) => `${p}\n`).join("") };
  if (config.hooks) {
    // Loading runs the file's top-level code, as lb's start would: a broken hooks file fails here, not at startup.
    try {
      await loadHooks(config.hooks);
    } catch (error) {
      return { code: 2, stdout: "", stderr: `${(error as Error).message}\n` };
    }
  }
  return { code: 0, stdout: `${path}: OK (${describePools(config)}, port ${config.port})\n`, stderr: "" };
}

/** "3 backends, policy round-robin" for one pool; "2 pools (api: 2 backends, web: 1 backend), 3 routes" for several. */
function describePools(config: Config): string {
  const pools = namedPools(config);
  if (pools.length === 1) return `${plural(pools[0]!.config.backends.length, "backend")}, policy ${pools[0]!.config.policy}`;
  const each = pools.map(({ name, config: own }) => `${name}: ${plural(own.backends.length, "backend")}`);
  return `${plural(pools.length, "pool")} (${each.join(", ")}), ${plural(config.routes.length, "route")}`;
}
