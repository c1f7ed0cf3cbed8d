/**
 * What decides which backends are in the pool and whether they take traffic: the health checker, DNS discovery and
 * the config file's backend list, plus the log line and dashboard event each change makes. There is one per pool: in
 * lb's single process, or in the primary with --workers (workers take the pool's state from it).
 */
import type { BackendSpec } from "../config/backend-url.ts";
import { formatDuration } from "../config/duration.ts";
import { type BackendDiff, diffBackends } from "../config/reload.ts";
import type { EventLog } from "../admin/events.ts";
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { PoolLog, describeEvent } from "./pool-log.ts";
import { describeState, isAvailable } from "./backend.ts";
import { type CheckSettings, HealthChecker } from "./checker.ts";
import { DnsDiscovery, dnsLookup } from "./discovery.ts";
import { HandOvers } from "./drain.ts";
import type { Pool, PoolEvent } from "./pool.ts";

/** What a pool's control plane is set up with (configure.ts builds it from the pool's settings). */
export interface ControlSettings {
  /** The config file's backends: addresses, and names DNS resolves. */
  backends: readonly BackendSpec[];
  checks: CheckSettings;
  /** The DNS server names are resolved with ("" for the system's). */
  dnsServer: string;
  resolveIntervalMs: number;
  /** How long a backend the file dropped keeps serving while none it lists is in rotation. */
  drainTimeoutMs: number;
}

export class ControlPlane {
  readonly #checker: HealthChecker;
  readonly #discovery: DnsDiscovery;
  readonly #poolLog: PoolLog;
  #settings: ControlSettings;
  /** Backends the file or DNS dropped, serving on until a backend that stays is in rotation; called off if listed again. */
  readonly #handOvers: HandOvers;

  constructor(
    private readonly pool: Pool,
    settings: ControlSettings,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** Recent pool changes, for the dashboard (one log for every pool). */
    private readonly events: EventLog,
    /** The pool's name, said in its alarms when lb has several; "" when it has one. */
    poolName: string,
  ) {
    this.#settings = settings;
    this.#poolLog = new PoolLog(log, pool, poolName);
    this.#checker = new HealthChecker(pool, settings.checks, (backend, ok) => {
      const counts = metrics.of(backend.url);
      if (ok) counts.checksPassed++;
      else counts.checksFailed++;
    });
    this.#handOvers = new HandOvers(pool);
    this.#discovery = new DnsDiscovery(pool, this.#handOvers, dnsLookup(settings.dnsServer), log, () => this.#settings.drainTimeoutMs);
  }

  /** The first round: DNS names resolved and every backend checked once. Then checks and lookups keep going. */
  async start(): Promise<void> {
    await this.#discovery.follow(resolvedBackends(this.#settings.backends));
    await this.#checker.start();
    this.#poolLog.firstRoundDone();
    this.#discovery.start(this.#settings.resolveIntervalMs);
  }

  /** What a pool change sets off here: a log line, a dashboard event, checks of a backend that came or went. */
  onPoolEvent(event: PoolEvent): void {
    this.#poolLog.event(event);
    this.events.add(event.backend.name, describeState(event.backend), describeEvent(event));
    if (event.type === "added") void this.#checker.watch(event.backend);
    if (event.type === "removed") this.#checker.unwatch(event.backend);
  }

  /**
   * Applies a reloaded config: new check settings, and the file's backends made the pool's — new ones added, changed
   * weights set, dropped ones handed over (they serve until a backend that stays is in rotation) and drained out.
   */
  reload(next: ControlSettings): BackendDiff {
    const diff = diffBackends(staticBackends(this.#settings.backends), staticBackends(next.backends));
    this.#settings = next;
    this.#checker.reconfigure(next.checks);
    void this.#discovery.follow(resolvedBackends(next.backends));
    this.#discovery.start(next.resolveIntervalMs);
    for (const spec of diff.added) this.#adopt(spec);
    for (const spec of diff.reweighted) {
      const backend = this.pool.find(spec.url);
      if (backend) this.pool.setWeight(backend, spec.weight);
    }
    const dropped = diff.removed.flatMap((url) => this.pool.find(url) ?? []);
    const held = dropped.filter(isAvailable);
    const timeout = formatDuration(next.drainTimeoutMs);
    this.#handOvers.start(dropped, next.drainTimeoutMs, (backend, how) => {
      if (how !== "timed out") return;
      this.log.warn(`backend ${backend.name}, dropped by the config file, left at the drain timeout (${timeout}): no backend the file lists came into rotation`);
    });
    if (held.length > 0 && !this.#handOvers.hasSuccessor()) {
      const names = held.map((backend) => backend.name).join(", ");
      this.log.info(`config reload: ${names} keep taking requests until a backend the file lists is in rotation (at most ${timeout})`);
    }
    return diff;
  }

  stop(): void {
    this.#checker.stop();
    this.#discovery.stop();
  }

  /**
   * A backend the file now lists: added, or taken over if it came through the API before, or is still handing over
   * or draining (called off: it stays).
   */
  #adopt(spec: BackendSpec): void {
    const existing = this.pool.find(spec.url);
    if (existing) {
      this.#handOvers.callOff(existing);
      this.pool.setWeight(existing, spec.weight);
      if (existing.admin === "draining") this.pool.setAdminState(existing, "active");
      return;
    }
    try {
      this.pool.add(spec);
    } catch (error) {
      this.log.warn(`config reload: ${spec.url} cannot be added: ${(error as Error).message}`);
    }
  }
}

/** The backends given as addresses (the pool starts with them); the others are names DNS resolves. */
export function staticBackends(backends: readonly BackendSpec[]): BackendSpec[] {
  return backends.filter((spec) => !spec.resolve);
}

function resolvedBackends(backends: readonly BackendSpec[]): BackendSpec[] {
  return backends.filter((spec) => spec.resolve);
}
