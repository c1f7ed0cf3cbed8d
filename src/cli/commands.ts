/**
 * lb's commands, as one citty command tree: `lb [options] <backend>...` serves (the hidden `serve` command), and
 * the rest are subcommands (demo, backends, status, reload, certs, validate, version, completion, schema, types). Every
 * input problem exits 2 with one line; a bare word that is neither a command nor a backend address is refused with
 * "did you mean …?".
 */
import { type ArgsDef, type CommandDef, defineCommand, runCommand } from "citty";
import {
  ADMIN_ARGS,
  AdminCallError,
  BACKEND_ACTIONS,
  BACKENDS_ARGS,
  BACKENDS_HELP,
  RELOAD_HELP,
  helpOptions,
  runBackendsCommand,
  runReloadCommand,
} from "../admin/client.ts";
import { CERTS_HELP, runCertsCommand } from "../admin/certs.ts";
import { STATUS_ARGS, STATUS_HELP, runStatusCommand } from "../admin/status.ts";
import { type HelpPage, closest, parseCommandLine, parseStrict, renderHelp, settingArgs, settingSections } from "./cli.ts";
import { type CompletionTree, SHELLS, type Shell, completionScript } from "./completion.ts";
import { ConfigError } from "../config/load.ts";
import { SETTINGS } from "../config/settings.ts";
import { configSchema } from "../config/schema.ts";
import { PUBLISHED_HOOK_TYPES } from "../hooks/published-types.ts";
import { describeError, runDemo, runServe } from "../run/lifecycle.ts";
import { VALIDATE_ARGS, VALIDATE_HELP, validateCommand } from "./validate.ts";
import { BUILD_INFO, VERSION, VERSION_LINE } from "../version.ts";

/** Exit status for bad input (flags, config, a port in use), as the CLI promises. */
export const EXIT_USAGE = 2;

const env = () => process.env;

const VERSION_ARGS = { json: { type: "boolean", description: "Print version, commit, Bun version and target as JSON" } } as const satisfies ArgsDef;

/** A subcommand: its citty definition, and the --help page generated for it. */
interface Command {
  def: CommandDef;
  help: () => HelpPage;
}

const SERVE_HELP = (): HelpPage => ({
  description: "lb: a layer-7 HTTP load balancer. It spreads requests over live backends, health-checks them, and retries around dead ones.",
  usage: ["lb [options] <backend-url>...      serve: balance requests over these backends", "lb <command> [options]"],
  commands: Object.entries(COMMANDS)
    .filter(([name]) => name !== "serve")
    .map(([name, command]) => [name, String(command.def.meta && "description" in command.def.meta ? command.def.meta.description : "")]),
  sections: settingSections(),
  notes: [
    "A backend is http://host:port, https://host:port or host:port. Run lb <command> --help for a command's options.",
    "Every option can also come from the environment: LB_ and its name in capitals, dashes as underscores " +
      "(LB_PORT=8080, LB_HEALTH_PATH=/healthz, LB_BACKENDS=a:1,b:2). Flags win over the environment, which wins over --config.",
  ],
  examples: [
    "lb http://localhost:8080 http://localhost:8081 http://localhost:8082",
    "lb --port 8000 --health-interval 2s --health-path /healthz 10.0.0.1:8080 10.0.0.2:8080",
    "lb --config lb.toml --log-level debug",
    "lb demo",
    "lb status --watch",
  ],
});

const DEMO_OMIT = ["backends", "check"];

const COMMANDS: Record<string, Command> = {
  serve: {
    def: defineCommand({
      meta: { name: "serve", description: "Balance requests over the backends given (the default command)", hidden: true },
      run: async ({ rawArgs }) => {
        const commandLine = parseCommandLine("lb", rawArgs);
        const backends = commandLine.positionals.map(asBackend);
        if (backends.length) commandLine.layer.values.backends = [...backends, ...((commandLine.layer.values.backends as string[]) ?? [])];
        await runServe(commandLine);
      },
    }),
    help: SERVE_HELP,
  },
  demo: {
    def: defineCommand({
      meta: { name: "demo", description: "Three built-in backends and lb in front of them, to try failover with nothing else installed" },
      run: async ({ rawArgs }) => {
        const commandLine = parseCommandLine("lb demo", rawArgs, DEMO_OMIT);
        if (commandLine.positionals.length) throw new ConfigError(`lb demo takes no backends (it brings its own); got ${commandLine.positionals[0]}`);
        await runDemo(commandLine);
      },
    }),
    help: () => ({
      description: "Starts three built-in backends and lb in front of them, to try failover with nothing else installed.",
      usage: ["lb demo [options]"],
      sections: settingSections(DEMO_OMIT),
      examples: ["lb demo", "lb demo --port 8100 --admin 127.0.0.1:7020 --health-interval 1s"],
    }),
  },
  backends: {
    def: defineCommand({
      meta: { name: "backends", description: "List or change the pool of a running lb: add, weight, drain, remove, enable, disable" },
      args: BACKENDS_ARGS as ArgsDef,
      run: async ({ rawArgs }) => console.log(await runBackendsCommand(rawArgs, env())),
    }),
    help: () => BACKENDS_HELP,
  },
  status: {
    def: defineCommand({
      meta: { name: "status", description: "The pool of a running lb as a table (--watch: live)" },
      args: STATUS_ARGS as ArgsDef,
      run: async ({ rawArgs }) => {
        const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
        console.log(await runStatusCommand(rawArgs, env(), tty));
      },
    }),
    help: () => STATUS_HELP,
  },
  reload: {
    def: defineCommand({
      meta: { name: "reload", description: "Make a running lb apply its config file again, and say what changed" },
      args: ADMIN_ARGS as ArgsDef,
      run: async ({ rawArgs }) => {
        const { stdout, stderr, code } = await runReloadCommand(rawArgs, env());
        console.log(stdout);
        if (stderr) console.error(stderr);
        process.exitCode = code;
      },
    }),
    help: () => RELOAD_HELP,
  },
  certs: {
    def: defineCommand({
      meta: { name: "certs", description: "The certificates a running lb serves (files and --acme): names, issuer, expiry, renewal" },
      args: ADMIN_ARGS as ArgsDef,
      run: async ({ rawArgs }) => console.log(await runCertsCommand(rawArgs, env())),
    }),
    help: () => CERTS_HELP,
  },
  validate: {
    def: defineCommand({
      meta: { name: "validate", description: "Check a config file (and flags) without starting lb: exit 0, or 2 with every problem" },
      args: VALIDATE_ARGS as ArgsDef,
      run: async ({ rawArgs }) => {
        const { code, stdout, stderr } = await validateCommand(rawArgs, process.env);
        process.stdout.write(stdout);
        process.stderr.write(stderr);
        process.exitCode = code;
      },
    }),
    help: () => VALIDATE_HELP,
  },
  version: {
    def: defineCommand({
      meta: { name: "version", description: "Print lb's version and commit (--json: with Bun's version and the target)" },
      args: VERSION_ARGS as ArgsDef,
      run: ({ rawArgs }) => {
        const { json } = parseStrict(rawArgs, VERSION_ARGS, "lb version");
        console.log(json ? JSON.stringify(BUILD_INFO, null, 2) : VERSION_LINE);
      },
    }),
    help: () => ({ description: "Prints lb's version and the commit it was built from.", usage: ["lb version [--json]"], sections: [{ title: "Options", options: helpOptions(VERSION_ARGS) }] }),
  },
  completion: {
    def: defineCommand({
      meta: { name: "completion", description: "Print shell completion for bash, zsh or fish" },
      run: ({ rawArgs }) => {
        const [shell, ...extra] = parseStrict(rawArgs, {}, "lb completion")._;
        if (!SHELLS.includes(shell as Shell) || extra.length) throw new ConfigError(`lb completion needs one of ${SHELLS.join(", ")}, e.g. lb completion bash`);
        process.stdout.write(completionScript(shell as Shell, completionTree()));
      },
    }),
    help: () => ({
      description: "Prints a completion script for your shell, generated from lb's commands and options.",
      usage: ["lb completion bash|zsh|fish"],
      sections: [],
      examples: ["source <(lb completion bash)          # in ~/.bashrc", "source <(lb completion zsh)           # in ~/.zshrc", "lb completion fish > ~/.config/fish/completions/lb.fish"],
    }),
  },
  schema: {
    def: defineCommand({
      meta: { name: "schema", description: "Print the config file's JSON Schema, for editors" },
      run: ({ rawArgs }) => {
        parseStrict(rawArgs, {}, "lb schema");
        console.log(JSON.stringify(configSchema(), null, 2));
      },
    }),
    help: () => ({ description: "Prints the config file's JSON Schema (for editors and CI).", usage: ["lb schema > lb.schema.json"], sections: [] }),
  },
  types: {
    def: defineCommand({
      meta: { name: "types", description: "Print the TypeScript types of a --hooks file (lb-hooks.d.ts), for editors" },
      run: ({ rawArgs }) => {
        parseStrict(rawArgs, {}, "lb types");
        process.stdout.write(PUBLISHED_HOOK_TYPES);
      },
    }),
    help: () => ({
      description: "Prints the types of a hooks file's ctx and hooks; save them beside it and import them from there.",
      usage: ["lb types > lb-hooks.d.ts"],
      sections: [],
      examples: ['lb types > lb-hooks.d.ts      # then in lb.hooks.ts: import type { HookContext } from "./lb-hooks"'],
    }),
  },
};

const ROOT = defineCommand({
  meta: { name: "lb", version: VERSION, description: "A layer-7 HTTP load balancer" },
  subCommands: Object.fromEntries(Object.entries(COMMANDS).map(([name, command]) => [name, command.def])),
});

const COMMAND_NAMES = Object.keys(COMMANDS).filter((name) => name !== "serve");

/** Each command's options (and the fixed words some take), from the same definitions --help is made of. */
function completionTree(): CompletionTree {
  const flags = (args: ArgsDef) => ["--help", ...Object.keys(args).map((name) => `--${name}`)];
  // A flag means the same in every command that takes it; a setting's value words are those its parser accepts.
  const values: CompletionTree["values"] = {};
  for (const args of [settingArgs(), BACKENDS_ARGS, STATUS_ARGS, ADMIN_ARGS] as ArgsDef[]) {
    for (const [name, def] of Object.entries(args)) {
      if (def.type !== "string") continue;
      const choices = SETTINGS.find((setting) => setting.name === name)?.parse.schema.enum;
      const words = Array.isArray(choices) ? choices.map(String) : [];
      values[`--${name}`] = words;
      if ("alias" in def && typeof def.alias === "string") values[`-${def.alias}`] = words;
    }
  }
  return {
    values,
    commands: COMMAND_NAMES,
    words: {
      "": flags(settingArgs()),
      demo: flags(settingArgs(DEMO_OMIT)),
      backends: [...BACKEND_ACTIONS, ...flags(BACKENDS_ARGS)],
      status: flags(STATUS_ARGS),
      reload: flags(ADMIN_ARGS),
      certs: flags(ADMIN_ARGS),
      validate: flags(settingArgs()),
      version: flags(VERSION_ARGS),
      completion: [...SHELLS],
    },
  };
}

/** Runs the command line; resolves when a one-shot command is done (a serving one keeps the process alive). */
export async function runCli(argv: string[]): Promise<void> {
  try {
    if (argv[0] === "help") return void process.stdout.write(renderHelp(helpTopic(argv[1])));
    let name = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? argv[0] : "serve";
    let rest = name === "serve" && argv[0] !== "serve" ? argv : argv.slice(1);
    if (rest.includes("--help") || rest.includes("-h")) return void process.stdout.write(renderHelp(COMMANDS[name]!.help()));
    // nginx -t's habit: the serving command line with --check validates instead of serving.
    if (name === "serve" && rest.includes("--check")) [name, rest] = ["validate", rest.filter((arg) => arg !== "--check")];
    if (name === "serve" && rest.length === 1 && (rest[0] === "--version" || rest[0] === "-v")) return void console.log(VERSION_LINE);
    await runCommand(ROOT, { rawArgs: [name, ...rest] });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`lb: ${error.message}\n`);
      process.exit(EXIT_USAGE);
    }
    if (!(error instanceof AdminCallError)) throw error;
    process.stderr.write(`lb: ${error.message}\n`);
    process.exit(1);
  }
}

/** The help page `lb help [topic]` asks for; an unknown topic is a usage error, with a guess. */
function helpTopic(topic: string | undefined): HelpPage {
  if (topic === undefined) return SERVE_HELP();
  if (Object.hasOwn(COMMANDS, topic)) return COMMANDS[topic]!.help();
  const guess = closest(topic, COMMAND_NAMES);
  throw new ConfigError(`no command "${topic}"${guess ? `; did you mean "${guess}"?` : ""} (lb help lists them)`);
}

/**
 * A positional word as a backend: it must say it is one, with a scheme (http://…) or a port (host:port). Any other
 * word is most likely a command mistyped, and starting a proxy towards a host named "stauts" helps nobody.
 */
function asBackend(word: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(word) || /^(\[[0-9a-f:.]+\]|[^\s:/[\]]+):\d+(#.*)?$/i.test(word)) return word;
  if (COMMAND_NAMES.includes(word)) throw new ConfigError(`"${word}" is a command: put it first (lb ${word} …)`);
  const guess = closest(word, COMMAND_NAMES);
  if (guess) throw new ConfigError(`unknown command "${word}"; did you mean "${guess}"? (lb --help lists the commands)`);
  throw new ConfigError(`"${word}" is neither a command nor a backend; write backends as http://host:port or host:port (lb --help)`);
}

export { describeError };
