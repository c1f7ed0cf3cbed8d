/**
 * The pools lb runs, each beside its control plane (checks, DNS, the file's list): built from the config, changed by
 * reloads (kept pools retuned, new ones started, missing ones retired), stopped with lb. The one owner of that set.
 */
import type { EventLog } from "../admin/events.ts";
import type { BackendDiff } from "../config/reload.ts";
import { DEFAULT_POOL, type NamedPoolConfig, namedPools } from "../config/pools.ts";
import type { Config } from "../config/types.ts";
import { controlSettings, laneSettings, poolRules, upstreamTls } from "./configure.ts";
import { ControlPlane, type ControlSettings, staticBackends } from "../pool/control-plane.ts";
import type { ServedPool } from "../proxy/data-plane.ts";
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { Pool, type PoolEvent } from "../pool/pool.ts";
import { Relay } from "../pool/relay.ts";

/** A pool and what decides its members and health. */
interface PoolUnit {
  served: ServedPool;
  control: ControlPlane;
}

/** A pool a reload keeps, with what each side is to be set up with: all read before anything changes. */
interface KeptPool {
  config: Config;
  served: ServedPool;
  control: ControlSettings;
}

/** What a reload does to the pools: what the traffic side is to serve, and the changes, made by `apply()`. */
export interface PoolChange {
  /** Every pool the new config lists, as the traffic side serves it (a new one with `checked`, its first round). */
  readonly served: readonly ServedPool[];
  /** Retunes the kept pools, retires the missing ones, starts the new ones; returns what changed. */
  apply(): { diffs: BackendDiff[]; added: string[]; retired: string[] };
}

export class PoolSet {
  readonly #units = new Map<string, PoolUnit>();

  constructor(
    config: Config,
    private readonly parts: {
      metrics: Metrics;
      log: Logger;
      events: EventLog;
      /** What a change in a pool sets off on the traffic side, after its control plane had it. */
      onPoolEvent(poolName: string, event: PoolEvent): void;
    },
  ) {
    const listed = namedPools(config);
    for (const named of listed) this.#units.set(named.name, this.#unit(named, listed.length > 1));
  }

  pools(): ReadonlyMap<string, Pool> {
    return new Map([...this.#units].map(([name, unit]) => [name, unit.served.pool]));
  }

  /** The default pool (or the first): the one pool of an lb without named pools. */
  get main(): Pool {
    return (this.#units.get(DEFAULT_POOL) ?? this.#units.values().next().value!).served.pool;
  }

  served(): ServedPool[] {
    return [...this.#units.values()].map((unit) => unit.served);
  }

  /** The first health round of every pool. */
  async start(): Promise<void> {
    await Promise.all([...this.#units.values()].map((unit) => unit.control.start()));
  }

  /** Stops the checks, DNS look-ups and ejection timers. */
  stopChecks(): void {
    for (const unit of this.#units.values()) unit.control.stop();
  }

  /** Stops the checks, and the pools take no more requests. */
  close(): void {
    this.stopChecks();
    for (const unit of this.#units.values()) unit.served.pool.close();
  }

  /**
   * Reads what `effective` needs (a file that cannot be read throws here, before anything changed) and builds the
   * pools it adds, unstarted.
   */
  prepare(effective: Config): PoolChange {
    const listed = namedPools(effective);
    const added = listed.filter((named) => !this.#units.has(named.name)).map((named) => this.#unit(named, listed.length > 1));
    const firstRounds = new Map(added.map((unit) => [unit.served.name, Promise.withResolvers<void>()]));
    const kept: KeptPool[] = [];
    const served = listed.map(({ name, config }): ServedPool => {
      const unit = this.#units.get(name);
      if (!unit) return { ...added.find((a) => a.served.name === name)!.served, checked: firstRounds.get(name)!.promise };
      const tls = upstreamTls(config);
      const next = { name, pool: unit.served.pool, ...laneSettings(config, tls) };
      kept.push({ config, served: next, control: controlSettings(config, tls) });
      return next;
    });
    const apply = () => {
      const diffs: BackendDiff[] = [];
      for (const next of kept) {
        const unit = this.#units.get(next.served.name)!;
        diffs.push(unit.control.reload(next.control));
        next.served.pool.reconfigure(poolRules(next.config));
        unit.served = next.served;
      }
      const retired = [...this.#units.keys()].filter((name) => !listed.some((named) => named.name === name));
      for (const name of retired) {
        // Its requests drain on the traffic side; its checks and ejection timers stop now.
        const unit = this.#units.get(name)!;
        unit.control.stop();
        unit.served.pool.close();
        this.#units.delete(name);
      }
      for (const unit of added) {
        this.#units.set(unit.served.name, unit);
        const round = firstRounds.get(unit.served.name)!;
        unit.control.start().then(round.resolve, round.resolve);
      }
      return { diffs, added: added.map((unit) => unit.served.name), retired };
    };
    return { served, apply };
  }

  #unit({ name, config }: NamedPoolConfig, several: boolean): PoolUnit {
    const { metrics, log, events } = this.parts;
    const tls = upstreamTls(config);
    const changes = new Relay<[PoolEvent]>();
    const pool = new Pool(staticBackends(config.backends), { ...poolRules(config), listener: changes.emit });
    const control = new ControlPlane(pool, controlSettings(config, tls), metrics, log, events, several ? name : "");
    // What a change in the pool sets off: log lines and checks (control), then the requests it concerns (traffic).
    changes.connect((event) => {
      control.onPoolEvent(event);
      this.parts.onPoolEvent(name, event);
    });
    return { served: { name, pool, ...laneSettings(config, tls) }, control };
  }
}
