/**
 * A serving lb's life as a process: start it from a config, stop it on SIGINT/SIGTERM (a second one means now),
 * reopen logs on SIGUSR1, reload on SIGHUP and when the config file changes; and `lb demo`, the same with three
 * built-in backends.
 */
import { watch } from "node:fs";
import { basename, dirname, resolve as resolvePath } from "node:path";
import type { ParsedCommandLine } from "../cli/cli.ts";
import { environmentLayers } from "../config/environment.ts";
import { ConfigError, type Layer, readConfigFile, resolveConfig } from "../config/load.ts";
import { DEFAULT_ADMIN_PORT } from "../config/settings.ts";
import type { Config } from "../config/types.ts";
import { demoInstructions, readDemoCommands, startDemoBackends } from "../cli/demo.ts";
import { handleEscapedErrors } from "../hooks/escaped.ts";
import { type Logger, createLogger } from "../log/log.ts";
import type { ReloadOutcome } from "../admin/api.ts";
import { claimPort } from "../front/listeners.ts";
import { ListenError, type RunningLb, type StartOptions, startLb } from "./start.ts";

const environment = () => ({ stdoutIsTTY: Boolean(process.stdout.isTTY) });

/** The settings in order of precedence, lowest first: the file, the environment, the flags. */
function layersOf(file: Layer | null, commandLine: ParsedCommandLine): Layer[] {
  return [...(file ? [file] : []), ...environmentLayers(process.env), commandLine.layer];
}

/** `lb [options] <backend>...`: serves until a signal stops it; the config file, if any, is followed. */
export async function runServe(commandLine: ParsedCommandLine): Promise<void> {
  const path = commandLine.configPath;
  const configChanges = path ? watchConfigFile(path) : null;
  const config = resolveConfig(layersOf(path ? await readConfigFile(path) : null, commandLine), environment());
  // Set once lb runs; POST /api/reload cannot come before.
  let reload: (why: string) => Promise<ReloadOutcome> = async () => ({ applied: false, error: "lb is still starting" });
  const { lb, log } = await serve(config, path ? (why) => reload(why) : undefined);
  if (path && configChanges) {
    reload = reloader(lb, log, async () => resolveConfig(layersOf(await readConfigFile(path), commandLine), environment()));
    reloadOnChange(path, configChanges, reload);
  }
  // Without a file, SIGHUP re-reads the certificate files lb was started with (renewed in place by certbot and the
  // like; --acme orders a deleted one anew); with none there is nothing to reload. It must not end the process either
  // way (its default action).
  else if (config.tlsCert || config.acme.length) {
    const reread = reloader(lb, log, async () => config);
    process.on("SIGHUP", () => void reread("SIGHUP, no --config: the certificate files re-read"));
  } else process.on("SIGHUP", () => log.warn("SIGHUP: no --config file to reload"));
}

/** `lb demo`: three backends in this process and lb in front of them, on free ports where the usual ones are taken. */
export async function runDemo(commandLine: ParsedCommandLine): Promise<void> {
  const path = commandLine.configPath;
  const layers = layersOf(path ? await readConfigFile(path) : null, commandLine);
  const backends = startDemoBackends();
  const given = Object.fromEntries(layers.flatMap((l) => Object.entries(l.values)));
  const demoLayer: Layer = {
    source: "demo",
    values: {
      "health-interval": "2s",
      host: "127.0.0.1",
      // A first try must not fail because the usual ports are busy: unless chosen, a taken one becomes a free one.
      ...(given.port === undefined && isTaken(8000) ? { port: 0 } : {}),
      ...(given.admin === undefined && isTaken(DEFAULT_ADMIN_PORT) ? { admin: "127.0.0.1:0" } : {}),
    },
  };
  // The demo's own backends come last: LB_BACKENDS or a file's list must not replace them.
  const demoBackends: Layer = { source: "demo", values: { backends: backends.map((b) => `http://127.0.0.1:${b.port}`) } };
  const config = resolveConfig([demoLayer, ...layers, demoBackends], environment());
  const { lb, log } = await serve(config);
  process.stderr.write(demoInstructions(lb.url.origin, lb.adminUrl?.origin ?? null, backends));
  void readDemoCommands(backends, log);
}

/** Whether something listens on this loopback port already (listeners' exclusive claim fails). */
function isTaken(port: number): boolean {
  try {
    claimPort("127.0.0.1", port);
    return false;
  } catch {
    return true;
  }
}

async function serve(config: Config, reload?: StartOptions["reload"]): Promise<{ lb: RunningLb; log: Logger }> {
  const log = createLogger(config.logLevel, config.logFormat);
  let lb: RunningLb | undefined;
  // Before the hooks load: their top-level code may set a timer that throws. Counted once lb's metrics exist.
  handleEscapedErrors({ log: () => log, count: () => lb?.metrics.count("hookErrors", "escaped") });
  try {
    lb = await startLb(config, { log, reload });
  } catch (error) {
    throw listenError(error, config);
  }
  const running = lb;
  let signals = 0;
  const shutdown = async (signal: string) => {
    if (++signals > 1) process.exit(1); // a second Ctrl-C means now
    log.info(`${signal} received: stopping`);
    await running.stop();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGUSR1", () => {
    running.reopenLogs();
    log.info("SIGUSR1: access log reopened");
  });
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  return { lb: running, log };
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
  try {
    watch(dirname(resolvePath(path)), (_, file) => {
      if (file !== basename(path) && file !== "..data") return;
      if (listener) listener();
      else missed = true;
    });
  } catch {
    // Its folder does not exist: say so as a missing file is said (reading it fails the same way).
    throw new ConfigError(`${path}: cannot read the config file (no such file); check the --config path`);
  }
  return (next) => {
    listener = next;
    if (missed) next();
  };
}

/**
 * Reads the config again and applies it; an invalid one is logged and refused, the running config staying in force.
 * Each outcome is counted (lb_config_reloads_total).
 */
function reloader(lb: RunningLb, log: Logger, load: () => Promise<Config>): (why: string) => Promise<ReloadOutcome> {
  return async (why) => {
    const { reloads } = lb.metrics;
    try {
      const report = lb.reload(await load());
      reloads.success++;
      reloads.lastSuccessMs = Date.now();
      log.info(`${report.summary} (${why})`);
      return { applied: true, ...report };
    } catch (error) {
      reloads.failure++;
      const message = error instanceof ConfigError ? error.message : describeError(error);
      log.error(`config reload rejected, the running config stays in force: ${message} (${why})`);
      return { applied: false, error: message };
    }
  };
}

/** Reloads on SIGHUP and when the config file changes. */
function reloadOnChange(path: string, onChange: (listener: () => void) => void, reload: (why: string) => Promise<ReloadOutcome>): void {
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

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
