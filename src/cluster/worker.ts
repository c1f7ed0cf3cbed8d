/**
 * `--workers N`: a worker process (main.ts hands over to it; the primary's side is cluster/workers.ts). It serves
 * traffic on the shared port with the pools its primary describes, tells the primary when a backend refuses a
 * connection, and reports its counts every half second. It has no health checks, DNS or admin API of its own, and
 * leaves Ctrl-C to the primary: the primary decides, and stopping is the primary's call (or its death's).
 */
import type { AccessLog } from "../log/access-log.ts";
import { type PoolStates, type ToPrimary, type ToWorker, applyPoolState, backendLoad, snapshotMetrics } from "./sync.ts";
import { namedPools } from "../config/pools.ts";
import type { ToWatchdog } from "./watchdog.ts";
import { handleEscapedErrors } from "../hooks/escaped.ts";
import { HookSet } from "../hooks/hook-set.ts";
import { loadHooks } from "../hooks/load.ts";
import { effectiveConfig } from "../config/reload.ts";
import type { Config } from "../config/types.ts";
import { createAccessLog, createTracing, laneSettings, poolRules, upstreamTls } from "../run/configure.ts";
import type { TlsCertificates } from "../front/listeners.ts";
import { type Logger, consolaLevel, createLogger } from "../log/log.ts";
import { Metrics } from "../metrics/metrics.ts";
import { NoBackendAlarm, logPoolEvent } from "../pool/pool-log.ts";
import { Pool, type PoolEvent } from "../pool/pool.ts";
import { Relay } from "../pool/relay.ts";
import { servedHere } from "../run/start.ts";

const REPORT_EVERY_MS = 500;
/** The main thread tells its watchdog it runs this often; silent for WATCHDOG_STUCK_MS, it counts as stuck. */
const WATCHDOG_TICK_MS = 250;
const WATCHDOG_STUCK_MS = 1000;

interface RunningWorker {
  readonly metrics: Metrics;
  report(): ToPrimary;
  /** Makes the pools what the primary says (its changes are not echoed back). */
  adoptPoolStates(states: PoolStates): void;
  reload(next: Config): void;
  useAcmeCertificates(certificates: TlsCertificates): void;
  reopenLogs(): void;
  /** Drains and closes (once: the process's stop guards it). */
  stop(): Promise<void>;
}

/** One of the worker's pools: its members follow the primary's state; ejections are the worker's own. */
interface WorkerPool {
  pool: Pool;
  alarm: NoBackendAlarm;
  /** Settles at the first state the primary sends for it (a pool a reload added waits for it). */
  stated: PromiseWithResolvers<void>;
}

/** Serves the port its primary claimed, with the pools the primary describes in `states`. */
function startWorker(
  config: Config,
  log: Logger,
  accessLog: AccessLog | null,
  hooks: HookSet | null,
  states: PoolStates,
  certificates: TlsCertificates,
  send: (message: ToPrimary) => void,
): RunningWorker {
  const metrics = new Metrics();
  const pools = new Map<string, WorkerPool>();
  /** True while applying the primary's state: those changes are the primary's news, not this worker's. */
  let adopting = false;
  /** The traffic side, built from the pools and connected then. */
  const toTraffic = new Relay<[string, PoolEvent]>();
  const tellPrimary = ({ pool, alarm }: WorkerPool, event: PoolEvent) => {
    if (event.type === "health") {
      // A refused connection goes up: the primary marks the backend down for all.
      if (!adopting && event.to.status === "unhealthy") send({ type: "down", url: event.backend.url, reason: event.to.reason });
    } else if (event.type === "ejected" || event.type === "returned" || event.type === "ejection-refused") {
      logPoolEvent(log, event, pool); // ejections are this worker's own
      alarm.check(pool, log);
    }
  };
  const createPool = (name: string, poolConfig: Config, several: boolean): WorkerPool => {
    const changes = new Relay<[PoolEvent]>();
    const pool = new Pool([], { ...poolRules(poolConfig), listener: changes.emit });
    const unit: WorkerPool = { pool, alarm: new NoBackendAlarm(several ? name : ""), stated: Promise.withResolvers() };
    changes.connect((event) => {
      tellPrimary(unit, event);
      toTraffic.emit(name, event);
    });
    return unit;
  };
  /** The pools `next` names, created where new; those it no longer names are closed (their requests drain). */
  const follow = (next: Config) => {
    const listed = namedPools(next);
    for (const { name, config: poolConfig } of listed) {
      const known = pools.get(name);
      if (known) known.pool.reconfigure(poolRules(poolConfig));
      else pools.set(name, createPool(name, poolConfig, listed.length > 1));
    }
    for (const [name, { pool }] of pools) {
      if (listed.some((named) => named.name === name)) continue;
      pool.close();
      pools.delete(name);
    }
    return listed.map(({ name, config: poolConfig }) => {
      const { pool, stated } = pools.get(name)!;
      return { name, pool, ...laneSettings(poolConfig, upstreamTls(poolConfig)), checked: stated.promise };
    });
  };
  const adoptPoolStates = (next: PoolStates) => {
    adopting = true;
    try {
      // A pool the primary has and this worker not yet: a reload this worker has still to get adds it.
      for (const [name, { pool, stated }] of pools) {
        const state = next[name];
        if (!state) continue;
        applyPoolState(pool, state);
        stated.resolve();
      }
    } finally {
      adopting = false;
    }
  };
  const traffic = servedHere(config, follow(config), metrics, accessLog, log, hooks, true, certificates, createTracing(config, metrics, log));
  toTraffic.connect(traffic.onPoolEvent);
  adoptPoolStates(states);
  let current = config;
  void traffic.open();

  return {
    metrics,
    report: () => ({
      type: "report",
      report: {
        queued: traffic.queued(),
        clients: traffic.clients(),
        load: backendLoad([...pools.values()].flatMap(({ pool }) => pool.backends)),
        metrics: snapshotMetrics(metrics, Date.now()),
      },
    }),
    adoptPoolStates,
    // The pools' members are the primary's business: they follow the state it sends after its own reload.
    reload(next) {
      const effective = effectiveConfig(current, next);
      traffic.reload(effective, next, follow(effective));
      log.level = consolaLevel(next.logLevel);
      current = effective;
    },
    useAcmeCertificates: traffic.useAcmeCertificates,
    reopenLogs: traffic.reopenLogs,
    async stop() {
      for (const { pool } of pools.values()) pool.close();
      await traffic.stop(current.drainTimeout);
      accessLog?.flush();
    },
  };
}

/** The worker process's main: starts on the primary's word, then follows its messages. */
export function runWorker(id: string): void {
  const send = (message: ToPrimary) => process.send?.(message);
  /** Sends, then exits: exiting at once would lose what is still queued on the IPC channel (access lines). */
  const sendAndExit = (message: ToPrimary, code: number) => {
    if (!process.connected) process.exit(code);
    process.send!(message, undefined, undefined, () => process.exit(code));
  };
  let worker: RunningWorker | null = null;
  let log = createLogger("info", "pretty", `worker ${id}: `);
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      if (!worker) process.exit(0);
      await worker.stop();
      sendAndExit(worker.report(), 0);
    })());

  const start = async (message: ToWorker & { type: "start" }) => {
    const { config } = message;
    log = createLogger(config.logLevel, config.logFormat, `worker ${id}: `);
    try {
      const accessLog = createAccessLog(config, log, { write: (lines) => send({ type: "access", lines }), flush() {} });
      // Each worker loads and watches the hooks file itself: a module cannot be sent over IPC.
      const hooks = config.hooks ? new HookSet(await loadHooks(config.hooks), log) : null;
      worker = startWorker(config, log, accessLog, hooks, message.state, message.certificates, send);
    } catch (error) {
      const { message: text, code } = error as Error & { code?: string };
      return sendAndExit({ type: "failed", message: text, code }, 1);
    }
    const running = worker;
    setInterval(() => send(running.report()), REPORT_EVERY_MS).unref();
    send({ type: "ready" });
  };

  const handle = (message: ToWorker) => {
    switch (message.type) {
      case "start":
        return start(message);
      case "state":
        return worker?.adoptPoolStates(message.state);
      case "reload":
        return worker?.reload(message.config);
      case "certificates":
        return worker?.useAcmeCertificates(message.certificates);
      case "reopen-logs":
        return worker?.reopenLogs();
      case "stop":
        return void stop();
    }
  };
  // One at a time, in order: a start still loading the hooks file holds back the pool states sent after it.
  let handled = Promise.resolve();
  process.on("message", (message: ToWorker) => {
    handled = handled.then(() => handle(message)).catch((error) => log.error(`${message.type} failed: ${(error as Error).message}`));
  });
  handleEscapedErrors({ log: () => log, count: () => worker?.metrics.count("hookErrors", "escaped") });
  watchForOrphaning(process.ppid, () => log);
  // Ctrl-C reaches the whole process group: the primary orders the stop, so that it is one drain, not two.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => void stop());
  // The primary is gone (killed, crashed): finish what is in flight and leave, rather than serve an unwatched pool.
  process.on("disconnect", () => void stop());
}

/**
 * The watchdog thread's module. From source it sits beside this file; in the compiled binary all of lb is one bundle at
 * the embedded root, and build.ts embeds the watchdog there as an entrypoint of its own, under its path from src/.
 */
const WATCHDOG_MODULE = import.meta.url.includes("/$bunfs/") ? "./cluster/watchdog.ts" : new URL("./watchdog.ts", import.meta.url).href;

/**
 * Starts the watchdog thread (cluster/watchdog.ts) that kills this process when the primary is gone while the main
 * thread is stuck; "disconnect" above cannot run then, and the process would keep the port. About 5 MiB per worker.
 */
function watchForOrphaning(primaryPid: number, log: () => Logger): void {
  const watchdog = new Worker(WATCHDOG_MODULE);
  watchdog.unref();
  // A binary built without the watchdog's entrypoint (build.ts) would otherwise lose it silently.
  watchdog.addEventListener("error", (event) => log().error(`the watchdog thread failed: ${event.message}; this worker may outlive a primary that dies while it is stuck`));
  const tell = (message: ToWatchdog) => watchdog.postMessage(message);
  tell({ primaryPid, stuckAfterMs: WATCHDOG_STUCK_MS });
  setInterval(() => tell("tick"), WATCHDOG_TICK_MS).unref();
}
