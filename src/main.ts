#!/usr/bin/env bun
/** The command line: `lb [options] <backend-url>...` and `lb demo`. Every input problem exits 2 with one line. */
import { watch } from "node:fs";
import { basename, dirname, resolve as resolvePath } from "node:path";
import { BACKENDS_USAGE, runBackendsCommand } from "./admin/client.ts";
import { STATUS_USAGE, runStatusCommand } from "./admin/status.ts";
import { type CommandSpec, parseCommandLine, usage } from "./cli.ts";
import { ConfigError, type Layer, readConfigFile, resolveConfig } from "./config/load.ts";
import { configSchema } from "./config/schema.ts";
import type { Config } from "./config/settings.ts";
import { demoInstructions, readDemoCommands, startDemoBackends } from "./demo.ts";
import { createLogger, type Logger } from "./log.ts";
import { ListenError, type RunningLb, startLb } from "./server.ts";
import { runWorker } from "./worker.ts";
import { WORKER_ENV } from "./cluster/workers.ts";
import { VERSION_LINE } from "./version.ts";

const LB: CommandSpec = {
  name: "lb",
  description: "A layer-7 HTTP load balancer: spreads requests over live backends, health-checks them, retries around dead ones",
  examples: [
    "lb http://localhost:8080 http://localhost:8081 http://localhost:8082",
    "lb --port 8000 --health-interval 2s --health-path /healthz http://10.0.0.1:8080 http://10.0.0.2:8080",
    "lb --config lb.toml --log-level debug",
    "lb demo                 three built-in backends and lb in front of them",
    "lb backends list        the pool of a running lb (also add, drain, remove, enable, disable)",
    "lb status --watch       a live table of the pool of a running lb",
    "lb schema > lb.schema.json   the config file's JSON Schema, for editors",
  ],
};

const DEMO: CommandSpec = {
  name: "lb demo",
  description: "Starts three built-in backends and lb in front of them, to try failover with nothing else installed",
  omit: ["backends"],
  examples: ["lb demo", "lb demo --port 9000 --health-interval 1s"],
};

/** Exit status for bad input (flags, config, a port in use), as the CLI promises. */
const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<void> {
  const workerId = process.env[WORKER_ENV];
  if (workerId) return runWorker(workerId);
  if (argv[0] === "backends") {
    if (argv.includes("--help") || argv.includes("-h")) return void process.stdout.write(BACKENDS_USAGE);
    return void console.log(await runBackendsCommand(argv.slice(1), { adminToken: process.env.LB_ADMIN_TOKEN }));
  }
  if (argv[0] === "status") {
    if (argv.includes("--help") || argv.includes("-h")) return void process.stdout.write(STATUS_USAGE);
    const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
    return void console.log(await runStatusCommand(argv.slice(1), { adminToken: process.env.LB_ADMIN_TOKEN }, tty));
  }
  if (argv[0] === "schema") return void console.log(JSON.stringify(configSchema(), null, 2));
  const isDemo = argv[0] === "demo";
  const spec = isDemo ? DEMO : LB;
  const args = isDemo ? argv.slice(1) : argv;
  if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(await usage(spec));
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) return void console.log(VERSION_LINE);

  const commandLine = parseCommandLine(spec, args);
  const path = commandLine.configPath;
  const configChanges = path && !isDemo ? watchConfigFile(path) : null;
  const layers: Layer[] = path ? [await readConfigFile(path)] : [];
  const environment = { stdoutIsTTY: Boolean(process.stdout.isTTY), adminToken: process.env.LB_ADMIN_TOKEN };
  if (!isDemo) {
    const config = resolveConfig([...layers, commandLine.layer], environment);
    const { lb, log } = await serve(config);
    if (path && configChanges) {
      reloadOnChange(path, configChanges, log, async () => resolveConfig([await readConfigFile(path), commandLine.layer], environment), lb);
    }
    // Without a file there is nothing to reload; SIGHUP must not end the process (its default action).
    else process.on("SIGHUP", () => log.warn("SIGHUP: no --config file to reload"));
    return;
  }
  const backends = startDemoBackends();
  const demoLayer: Layer = {
    source: "demo",
    values: { backends: backends.map((b) => `http://127.0.0.1:${b.port}`), "health-interval": "2s", host: "127.0.0.1" },
  };
  const config = resolveConfig([demoLayer, ...layers, commandLine.layer], environment);
  const { lb, log } = await serve(config);
  process.stderr.write(demoInstructions(lb.url.origin, backends));
  void readDemoCommands(backends, log);
}

async function serve(config: Config): Promise<{ lb: RunningLb; log: Logger }> {
  const log = createLogger(config.logLevel, config.logFormat);
  let lb: RunningLb;
  try {
    lb = await startLb(config, { log });
  } catch (error) {
    throw listenError(error, config);
  }
  // A stray rejection must not take down a process that is serving everyone else.
  process.on("unhandledRejection", (reason) => log.error(`unhandled error: ${describe(reason)}`));
  let signals = 0;
  const shutdown = async (signal: string) => {
    if (++signals > 1) process.exit(1); // a second Ctrl-C means now
    log.info(`${signal} received: stopping`);
    await lb.stop();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGUSR1", () => {
    lb.reopenLogs();
    log.info("SIGUSR1: access log reopened");
  });
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  return { lb, log };
}

/** How long the config file must be quiet before a change is reloaded (editors write in several steps). */
const RELOAD_DEBOUNCE_MS = 300;

/**
 * Watches the config file from before it is first read, so an edit made while lb starts is not missed; changes go to
 * the listener set later (one seen before it is set is passed on at once). The directory is watched, not the file,
 * because editors often replace the file (a new inode) rather than write into it, and Kubernetes swaps a "..data"
 * link.
 */
function watchConfigFile(path: string): (listener: () => void) => void {
  let listener: (() => void) | null = null;
  let missed = false;
  watch(dirname(resolvePath(path)), (_, file) => {
    if (file !== basename(path) && file !== "..data") return;
    if (listener) listener();
    else missed = true;
  });
  return (next) => {
    listener = next;
    if (missed) next();
  };
}

/** Reloads on SIGHUP and when the config file changes. An invalid file is logged and ignored. */
function reloadOnChange(path: string, onChange: (listener: () => void) => void, log: Logger, load: () => Promise<Config>, lb: RunningLb): void {
  const reload = async (why: string) => {
    try {
      log.info(`${lb.reload(await load())} (${why})`);
    } catch (error) {
      const message = error instanceof ConfigError ? error.message : describe(error);
      log.error(`config reload rejected, the running config stays in force: ${message}`);
    }
  };
  process.on("SIGHUP", () => void reload("SIGHUP"));
  let timer: ReturnType<typeof setTimeout> | undefined;
  onChange(() => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(`${path} changed`), RELOAD_DEBOUNCE_MS);
  });
}

function listenError(error: unknown, config: Config): unknown {
  if (!(error instanceof ListenError)) return error;
  const [host, port, flag, what] =
    error.listener === "admin"
      ? [config.admin!.host, config.admin!.port, "--admin", "admin port"]
      : error.listener === "redirect"
        ? [config.host, config.httpRedirectPort, "--http-redirect-port", "redirect port"]
        : [config.host, config.port, "--port", "port"];
  if (error.code === "EADDRINUSE") {
    return new ConfigError(`${what} ${port} is already in use on ${host}; stop what uses it or choose another with ${flag}`);
  }
  if (error.code === "EACCES") {
    return new ConfigError(`not allowed to listen on ${host}:${port}; use a port above 1023 or run with the right privileges`);
  }
  if (error.code === "EADDRNOTAVAIL") return new ConfigError(`${host} is not an address of this machine; check ${flag}`);
  return error;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

main(process.argv.slice(2)).catch((error) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`lb: ${error.message}\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`lb: ${describe(error)}\n`);
  process.exit(1);
});
