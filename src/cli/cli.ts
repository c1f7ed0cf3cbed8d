/**
 * Command-line parsing on top of citty, strict about unknown options (citty lets them through), and the --help
 * pages: at most 100 columns, options grouped, colour only on a terminal (consola's colours: NO_COLOR and
 * FORCE_COLOR are respected).
 */
import { type ArgsDef, parseArgs } from "citty";
import { colors } from "consola/utils";
import { ConfigError, type Layer } from "../config/load.ts";
export { closest } from "../config/did-you-mean.ts";
import { SETTINGS, SETTING_GROUPS, type Setting, describeDefault } from "../config/settings.ts";

const HELP_WIDTH = 100;

/** One option as --help shows it. */
export interface HelpOption {
  flag: string;
  hint?: string;
  description: string;
  /** Shown as "(default …)" after the description; empty or absent shows none. */
  shownDefault?: string;
}

/** A --help page: what the command does, how to call it, its commands and options, examples. */
export interface HelpPage {
  description: string;
  usage: string[];
  commands?: Array<[name: string, description: string]>;
  sections: Array<{ title: string; options: HelpOption[] }>;
  examples?: string[];
  /** Free text after the options. */
  notes?: string[];
}

export function renderHelp(page: HelpPage): string {
  const heading = (title: string) => colors.bold(title.toUpperCase());
  const lines = [...wrap(page.description, 0), "", heading("Usage"), ...page.usage.map((u) => `  ${u}`)];
  if (page.commands?.length) {
    const width = Math.max(...page.commands.map(([name]) => name.length)) + 4;
    lines.push("", heading("Commands"));
    for (const [name, text] of page.commands) lines.push(...column(`  ${colors.cyan(name)}`, name.length + 2, width, text));
  }
  const flags = page.sections.flatMap((s) => s.options).map(flagText);
  const width = Math.min(Math.max(0, ...flags.map((f) => f.length)) + 4, 40);
  for (const section of page.sections) {
    lines.push("", heading(section.title));
    for (const option of section.options) {
      const flag = flagText(option);
      const text = option.shownDefault ? `${option.description} (default ${option.shownDefault})` : option.description;
      lines.push(...column(`  ${colors.cyan(flag)}`, flag.length + 2, width, text));
    }
  }
  if (page.notes?.length) lines.push("", ...page.notes.flatMap((note) => wrap(note, 0)));
  if (page.examples?.length) lines.push("", heading("Examples"), ...page.examples.map((e) => `  ${e}`));
  return `${lines.join("\n")}\n`;
}

function flagText(option: HelpOption): string {
  return option.hint ? `${option.flag} <${option.hint}>` : option.flag;
}

/** `left` (printed `leftWidth` wide), then `text` wrapped in a column starting at `at`. */
function column(left: string, leftWidth: number, at: number, text: string): string[] {
  const body = wrap(text, at);
  const first = body[0]!.trimStart();
  if (leftWidth + 2 > at) return [left, ...wrap(text, at)];
  return [`${left}${" ".repeat(at - leftWidth)}${first}`, ...body.slice(1)];
}

/** Words wrapped to HELP_WIDTH, every line indented by `indent`. */
function wrap(text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + word.length > HELP_WIDTH) {
      lines.push(" ".repeat(indent) + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(" ".repeat(indent) + line);
  return lines;
}

/**
 * The settings as --help options, in their groups, then --config and --check; `omit` leaves some out (the demo brings
 * its own backends, and has nothing to check).
 */
export function settingSections(omit: readonly string[] = []): HelpPage["sections"] {
  const sections: HelpPage["sections"] = Object.entries(SETTING_GROUPS).map(([group, title]) => ({
    title,
    options: SETTINGS.filter((s) => s.group === group && !omit.includes(s.name)).map(settingOption),
  }));
  const config: HelpOption[] = [{ flag: "--config", hint: "file", description: CONFIG_DESCRIPTION }];
  if (!omit.includes("check")) config.push({ flag: "--check", description: CHECK_DESCRIPTION });
  sections.push({ title: "Config", options: config });
  return sections.filter((s) => s.options.length > 0);
}

const CONFIG_DESCRIPTION = "Read settings from a TOML, YAML or JSON file; flags override it; lb reloads it on change and on SIGHUP";
/** nginx -t's habit, handled before the flags are parsed (commands.ts): no setting, so only --help names it. */
const CHECK_DESCRIPTION = "Check the config (file and flags) and start nothing, as lb validate does: exit 0, or 2 with every problem";

function settingOption(setting: Setting): HelpOption {
  const flag = `${setting.alias ? `-${setting.alias}, ` : ""}--${setting.name}`;
  // A switch that is on by default is also the way to turn it off.
  if (setting.type === "boolean") return { flag: setting.fallback === true ? `--[no-]${setting.name}` : flag, description: setting.description };
  return { flag, hint: setting.valueHint, description: setting.description, shownDefault: describeDefault(setting) };
}

/** citty's definition of the settings' flags (and --config); `omit` as for settingSections. */
export function settingArgs(omit: readonly string[] = []): ArgsDef {
  const args: ArgsDef = {};
  for (const s of SETTINGS) {
    if (omit.includes(s.name)) continue;
    args[s.name] = {
      type: s.type,
      description: s.description,
      ...(s.alias ? { alias: s.alias } : {}),
      ...(s.valueHint ? { valueHint: s.valueHint } : {}),
    };
  }
  args.config = { type: "string", valueHint: "file", description: CONFIG_DESCRIPTION };
  return args;
}

/** Parses `argv` with citty, refusing options `args` does not define. `command` names the command in messages. */
export function parseStrict(argv: string[], args: ArgsDef, command: string): Record<string, unknown> & { _: string[] } {
  let parsed: Record<string, unknown> & { _: string[] };
  try {
    parsed = parseArgs(argv, args) as typeof parsed;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}; run ${command} --help`);
  }
  const known = new Set<string>(["_"]);
  for (const [name, def] of Object.entries(args)) {
    known.add(name).add(camel(name));
    if ("alias" in def && typeof def.alias === "string") known.add(def.alias);
  }
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) throw new ConfigError(`unknown option ${key.length === 1 ? "-" : "--"}${key}; run ${command} --help to see the options`);
  }
  return parsed;
}

export interface ParsedCommandLine {
  /** Settings given on the command line, keyed by setting name; only those actually given. */
  layer: Layer;
  configPath: string | undefined;
  /** Positional words, in order. */
  positionals: string[];
}

/** The settings a serving command was given (`omit`: those it does not take). */
export function parseCommandLine(command: string, argv: string[], omit: readonly string[] = []): ParsedCommandLine {
  const parsed = parseStrict(argv, settingArgs(omit), command);
  const values: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (omit.includes(s.name) || s.name === "backends") continue;
    const value = s.repeatable ? everyValue(argv, s.name) : parsed[s.name];
    if (value !== undefined) values[s.name] = value;
  }
  if (!omit.includes("backends") && typeof parsed.backends === "string") {
    values.backends = parsed.backends.split(",").filter((u) => u.trim() !== "");
  }
  const configPath = parsed.config;
  if (configPath !== undefined && (typeof configPath !== "string" || configPath === "")) {
    throw new ConfigError("--config needs a file path, e.g. --config lb.toml");
  }
  return { layer: { source: "command line", values }, configPath: configPath as string | undefined, positionals: parsed._ };
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
