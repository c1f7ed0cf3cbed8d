/** Command-line parsing on top of citty: flags from the settings table, strict about unknown options. */
import { type ArgsDef, parseArgs, renderUsage } from "citty";
import { ConfigError, type Layer } from "./config/load.ts";
import { SETTINGS, describeDefault } from "./config/settings.ts";
import { VERSION } from "./version.ts";

export interface CommandSpec {
  name: string;
  description: string;
  /** Settings this command does not take (the demo brings its own backends). */
  omit?: string[];
  /** Lines shown under EXAMPLES in --help. */
  examples: string[];
}

const CONFIG_ARG: ArgsDef = {
  config: {
    type: "string",
    valueHint: "file",
    description: "Read settings from a TOML, YAML or JSON file; flags override it. e.g. --config lb.toml",
  },
};

function argsFor(spec: CommandSpec, withDefaults: boolean): ArgsDef {
  const args: ArgsDef = {};
  if (!spec.omit?.includes("backends")) {
    args.urls = { type: "positional", required: false, description: "Backend URLs, e.g. http://localhost:8080" };
  }
  for (const s of SETTINGS) {
    if (spec.omit?.includes(s.name)) continue;
    const shownDefault = withDefaults ? describeDefault(s) : "";
    const common = {
      ...(s.alias ? { alias: s.alias } : {}),
      ...(s.valueHint ? { valueHint: s.valueHint } : {}),
      description: `${s.description}. e.g. ${s.example}`,
    };
    args[s.name] =
      s.type === "boolean"
        ? { ...common, type: "boolean", ...(withDefaults ? { default: s.fallback === true } : {}) }
        : { ...common, type: "string", ...(shownDefault !== "" ? { default: shownDefault } : {}) };
  }
  return { ...args, ...CONFIG_ARG };
}

export async function usage(spec: CommandSpec): Promise<string> {
  const text = await renderUsage({ meta: { name: spec.name, version: VERSION, description: spec.description }, args: argsFor(spec, true) });
  return `${text}\n\nEXAMPLES\n\n${spec.examples.map((e) => `  ${e}`).join("\n")}\n`;
}

export interface ParsedCommandLine {
  /** Settings given on the command line, keyed by setting name; only those actually given. */
  layer: Layer;
  configPath: string | undefined;
}

export function parseCommandLine(spec: CommandSpec, argv: string[]): ParsedCommandLine {
  const args = argsFor(spec, false);
  let parsed: Record<string, unknown> & { _: string[] };
  try {
    parsed = parseArgs(argv, args) as typeof parsed;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}; run ${spec.name} --help`);
  }
  const known = new Set<string>(["_"]);
  for (const [name, def] of Object.entries(args)) {
    known.add(name).add(camel(name));
    if ("alias" in def && typeof def.alias === "string") known.add(def.alias);
  }
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) throw new ConfigError(`unknown option ${key.length === 1 ? "-" : "--"}${key}; run ${spec.name} --help to see the options`);
  }

  const values: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const value = s.repeatable ? everyValue(argv, s.name) : parsed[s.name];
    if (value !== undefined && s.name !== "backends") values[s.name] = value;
  }
  if (!spec.omit?.includes("backends")) {
    const flagged = typeof parsed.backends === "string" ? parsed.backends.split(",").filter((u) => u.trim() !== "") : [];
    const urls = [...parsed._, ...flagged];
    if (urls.length > 0) values.backends = urls;
  } else if (parsed._.length > 0) {
    throw new ConfigError(`${spec.name} takes no backend URLs (it brings its own); got ${parsed._[0]}`);
  }
  const configPath = parsed.config;
  if (configPath !== undefined && (typeof configPath !== "string" || configPath === "")) {
    throw new ConfigError("--config needs a file path, e.g. --config lb.toml");
  }
  return { layer: { source: "command line", values }, configPath: configPath as string | undefined };
}

/** Every value of a repeated `--name value` / `--name=value` flag (citty keeps only the last); undefined if absent. */
function everyValue(argv: string[], name: string): string[] | undefined {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") break;
    if (arg === `--${name}` && i + 1 < argv.length) values.push(argv[++i]!);
    else if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
  }
  return values.length ? values : undefined;
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
