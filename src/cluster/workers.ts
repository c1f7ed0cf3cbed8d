/**
 * `--workers N`: the primary's side. N worker processes share the port (SO_REUSEPORT) and serve traffic; the primary
 * runs health checks, DNS and the admin API once, pushes the pool's state to every worker, sums their reports for
 * the admin API and metrics, restarts a worker that dies or stops answering (silence.ts), and hands reloads and log
 * reopening on. Processes, not threads: each worker has its own event loop and backend connections (src/upstream/),
 * and one stuck in a hook's endless loop is killed and replaced alone (silence.ts).
 */
import { settlesWithin } from "../deadline.ts";
import type { Subprocess } from "bun";
import type { Config } from "../config/types.ts";
import type { TlsCertificates } from "../front/listeners.ts";
import type { Logger } from "../log/log.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { Backend } from "../pool/backend.ts";
import type { Pool } from "../pool/pool.ts";
import { SilenceWatch, WORKER_SILENCE } from "./silence.ts";
import { type ToPrimary, type ToWorker, type WorkerReport, addMetrics, applyMetricsSnapshot, poolStates, sumLoad } from "./sync.ts";

/** Set in a worker's environment (to its number); main.ts then runs the worker side (worker.ts). */
export const WORKER_ENV = "LB_WORKER";
/** How long a worker may take from spawn to serving. */
const START_TIMEOUT_MS = 10_000;
/** A worker that dies is restarted after this, doubling while it keeps dying young, at most RESTART_MAX_MS. */
const RESTART_DELAY_MS = 250;
const RESTART_MAX_MS = 10_000;
/** A worker that served this long before dying is restarted at once (its next crash starts the backoff anew). */
const HEALTHY_UPTIME_MS = 30_000;

interface Worker {
  readonly id: number;
  process: Subprocess;
  /** This process's metrics as last reported (a restarted worker starts a new one). */
  metrics: Metrics;
  report: WorkerReport | null;
  startedAt: number;
  restartDelayMs: number;
}

export class WorkerSet {
  readonly #workers: Worker[] = [];
  /** Metrics of worker processes that have died, so counters never go backwards when one is replaced. */
  readonly #retired: Metrics[] = [];
  #config: Config;
  #stateQueued = false;
  #stopping = false;
  /** Workers that stopped answering (a hook stuck in a loop): reported, then killed and replaced. */
  readonly #silence = new SilenceWatch(WORKER_SILENCE);
  #looking: ReturnType<typeof setInterval> | undefined;

  constructor(
    config: Config,
    /** The primary's pools by name: it decides their members and health. */
    private readonly pools: () => ReadonlyMap<string, Pool>,
    /** The primary's own metrics (health checks); the workers' are added to it for the admin API. */
    private readonly own: Metrics,
    private readonly log: Logger,
    /** Where the workers' access lines go (the primary's access log). */
    private readonly accessLines: (lines: string | Uint8Array) => void,
    /** What --acme obtained so far; a worker (re)started later starts with the latest. */
    private acmeCertificates: TlsCertificates = [],
  ) {
    this.#config = config;
  }

  /** Starts every worker on `config.port` and resolves once all serve; rejects (after stopping them) if one cannot. */
  async start(count: number, config: Config): Promise<void> {
    this.#config = config;
    try {
      await Promise.all(Array.from({ length: count }, (_, i) => this.#spawn(i + 1)));
      this.#looking = setInterval(() => this.#lookForSilence(), WORKER_SILENCE.lookEveryMs);
      this.#looking.unref();
    } catch (error) {
      this.#stopping = true;
      for (const worker of this.#workers) worker.process.kill("SIGKILL");
      throw error;
    }
  }

  /** Sends the pools' state to every worker; changes in the same tick go as one message. */
  pushPoolState(): void {
    if (this.#stateQueued) return;
    this.#stateQueued = true;
    queueMicrotask(() => {
      this.#stateQueued = false;
      this.#broadcast({ type: "state", state: poolStates(this.pools()) });
    });
  }

  reload(config: Config): void {
    this.#config = { ...config, port: this.#config.port };
    this.#broadcast({ type: "reload", config });
  }

  reopenLogs(): void {
    this.#broadcast({ type: "reopen-logs" });
  }

  useAcmeCertificates(certificates: TlsCertificates): void {
    this.acmeCertificates = certificates;
    this.#broadcast({ type: "certificates", certificates });
  }

  /** Requests waiting in all workers, as of their latest reports. */
  queued(): number {
    return this.#workers.reduce((sum, w) => sum + (w.report?.queued ?? 0), 0);
  }

  /** The workers that have stopped answering (by number), until they answer again or their process is gone. */
  stuck(): number[] {
    return this.#silence.stuck();
  }

  /** Client requests and tunnels open in all workers, as of their latest reports. */
  clients(): number {
    return this.#workers.reduce((sum, w) => sum + (w.report?.clients ?? 0), 0);
  }

  /** The pool's metrics as a whole: the primary's checks plus every worker's requests, dead workers' included. */
  metrics(): Metrics {
    const total = new Metrics(this.own.startedAt);
    for (const part of [this.own, ...this.#retired, ...this.#workers.map((w) => w.metrics)]) addMetrics(total, part);
    // Backends that left the pool leave /metrics too (as in a single process), or DNS churn would grow it forever.
    const listed = new Set(this.#backends().map((backend) => backend.url));
    for (const url of total.backends.keys()) if (!listed.has(url)) total.backends.delete(url);
    return total;
  }

  /** Asks every worker to drain and exit, and waits for them (killing any still there after the drain timeout). */
  async stop(drainTimeoutMs: number): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#looking);
    this.#broadcast({ type: "stop" });
    const exited = Promise.all(this.#workers.map((w) => w.process.exited));
    const inTime = await settlesWithin(exited, drainTimeoutMs + 2000);
    if (!inTime) for (const worker of this.#workers) worker.process.kill("SIGKILL");
  }

  #broadcast(message: ToWorker): void {
    for (const worker of this.#workers) {
      if (worker.process.exitCode === null && worker.process.signalCode === null) worker.process.send(message);
    }
  }

  #spawn(id: number, restartDelayMs = RESTART_DELAY_MS): Promise<void> {
    const ready = Promise.withResolvers<void>();
    const timer = setTimeout(() => ready.reject(new Error(`worker ${id} did not start within ${START_TIMEOUT_MS / 1000}s`)), START_TIMEOUT_MS);
    const proc = Bun.spawn([...workerCommand()], {
      env: { ...process.env, [WORKER_ENV]: String(id) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      ipc: (message: ToPrimary) => {
        if (this.#isCurrent(worker)) this.#heard(worker);
        if (message.type === "ready") {
          clearTimeout(timer);
          ready.resolve();
        } else if (message.type === "failed") {
          clearTimeout(timer);
          ready.reject(Object.assign(new Error(message.message), { code: message.code }));
          proc.kill(); // it exits by itself too; this makes sure, so a failed restart is retried (onExit)
        } else this.#received(worker, message);
      },
      onExit: (_proc, exitCode, signalCode) => {
        clearTimeout(timer);
        if (this.#isCurrent(worker)) this.#silence.forget(id);
        ready.reject(new Error(`worker ${id} exited (${signalCode ?? `code ${exitCode}`}) before it served`));
        this.#exited(worker, signalCode ? String(signalCode) : `code ${exitCode}`);
      },
    });
    const worker: Worker = { id, process: proc, metrics: new Metrics(), report: null, startedAt: Date.now(), restartDelayMs };
    const index = this.#workers.findIndex((w) => w.id === id);
    if (index >= 0) this.#workers[index] = worker;
    else this.#workers.push(worker);
    proc.send({ type: "start", config: this.#config, state: poolStates(this.pools()), certificates: this.acmeCertificates } satisfies ToWorker);
    return ready.promise;
  }

  #received(worker: Worker, message: ToPrimary): void {
    if (message.type === "report") {
      worker.report = message.report;
      applyMetricsSnapshot(worker.metrics, message.report.metrics);
      sumLoad(this.#backends(), this.#reports());
    } else if (message.type === "access") {
      this.accessLines(message.lines);
    } else if (message.type === "down") {
      for (const pool of this.pools().values()) {
        const backend = pool.find(message.url);
        if (backend) pool.recordConnectFailure(backend, message.reason);
      }
    }
  }

  /** Whether this process is still the one serving as its worker number (not one replaced since). */
  #isCurrent(worker: Worker): boolean {
    return this.#workers.find((w) => w.id === worker.id) === worker;
  }

  /** Any message counts as an answer: a worker reports every half second. */
  #heard(worker: Worker): void {
    const stuckFor = this.#silence.heard(worker.id, performance.now());
    if (stuckFor !== null) this.log.info(`worker ${worker.id} (pid ${worker.process.pid}) answers again after ${(stuckFor / 1000).toFixed(1)}s`);
  }

  /** Reports workers newly stuck, and kills (SIGKILL) those silent too long: #exited starts another in their place. */
  #lookForSilence(): void {
    for (const { id, silentMs, verdict } of this.#silence.look(performance.now())) {
      const worker = this.#workers.find((w) => w.id === id);
      if (!worker) continue;
      const silent = `worker ${id} (pid ${worker.process.pid}) has not answered for ${(silentMs / 1000).toFixed(1)}s`;
      if (verdict === "stuck") {
        this.log.warn(`${silent} (stuck in a loop?): /readyz reports it; killed if silent for ${WORKER_SILENCE.killAfterMs / 1000}s`);
      } else {
        this.log.error(`${silent}: killing it (SIGKILL) to start another`);
        worker.process.kill("SIGKILL");
      }
    }
  }

  /** Every pool's backends (a backend is in one pool, so their URLs are unique). */
  #backends(): Backend[] {
    return [...this.pools().values()].flatMap((pool) => pool.backends);
  }

  #reports(): WorkerReport[] {
    return this.#workers.flatMap((w) => (w.report ? [w.report] : []));
  }

  #exited(worker: Worker, how: string): void {
    if (this.#stopping || !this.#isCurrent(worker)) return;
    worker.report = null;
    this.#retired.push(worker.metrics);
    worker.metrics = new Metrics();
    sumLoad(this.#backends(), this.#reports());
    const diedYoung = Date.now() - worker.startedAt < HEALTHY_UPTIME_MS;
    const delay = diedYoung ? worker.restartDelayMs : 0;
    this.log.warn(`worker ${worker.id} (pid ${worker.process.pid}) exited (${how}); restarting it${delay ? ` in ${delay}ms` : ""}`);
    setTimeout(() => {
      if (this.#stopping) return;
      const next = diedYoung ? Math.min(worker.restartDelayMs * 2, RESTART_MAX_MS) : RESTART_DELAY_MS;
      this.#spawn(worker.id, next).then(
        () => this.log.info(`worker ${worker.id} restarted`),
        (error: Error) => this.log.error(`worker ${worker.id} could not restart: ${error.message}`),
      );
    }, delay);
  }
}

/** How to start this same program again: the compiled binary alone, or bun with the entry script. */
function workerCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}
