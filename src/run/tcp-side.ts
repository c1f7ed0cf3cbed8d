/**
 * The [[tcp]] listeners beside the HTTP side, wired from a Config: bound at the start (an address in use is a config
 * error, as the HTTP port's), changed by reloads, drained at stop. They run in lb's one process, or in the primary
 * with --workers (which holds the pools and their health).
 */
import { ConfigError } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { TcpListenError, TcpService } from "../l4/tcp-service.ts";
import type { AccessLog } from "../log/access-log.ts";
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Pool } from "../pool/pool.ts";
import type { ServedPool } from "../proxy/data-plane.ts";
import type { Tracer } from "../tracing/spans.ts";
import { tcpLanes, tcpListeners } from "./configure.ts";

export class TcpSide {
  readonly service: TcpService;

  constructor(
    metrics: Metrics,
    accessLog: AccessLog | null,
    private readonly log: Logger,
    tracer: Tracer | null = null,
  ) {
    this.service = new TcpService({ metrics, accessLog, tracer });
  }

  /** Binds the config's listeners (a ConfigError when one cannot be) and says where they listen. */
  start(config: Config, pools: ReadonlyMap<string, Pool>): void {
    this.prepare(config).apply(pools, []);
  }

  /**
   * Binds what `config` adds (throws a ConfigError, having changed nothing, when it cannot); `apply` makes the
   * change with the pools as they are then (`served` tells which a reload added, and when their first health round
   * is done), and says what it added and removed ("" when nothing).
   */
  prepare(config: Config): { apply(pools: ReadonlyMap<string, Pool>, served: readonly ServedPool[]): string } {
    const listeners = tcpListeners(config);
    let change: ReturnType<TcpService["prepare"]>;
    try {
      change = this.service.prepare(listeners);
    } catch (error) {
      throw error instanceof TcpListenError ? new ConfigError(error.message) : error;
    }
    return {
      apply: (pools, served) => {
        const firstRounds = new Map(served.flatMap(({ name, checked }) => (checked ? [[name, checked] as const] : [])));
        const { added, removed } = change.apply(tcpLanes(config, pools, firstRounds), config.drainTimeout);
        for (const listen of added) {
          const entries = listeners.find((l) => l.listen === listen)!.entries;
          const routes = entries.map(({ sni, pool }) => (sni ? `${sni.join(" ")} → ${pool}` : `→ ${pool}`)).join(", ");
          this.log.info(`tcp listening on ${listen} ${routes}`);
        }
        for (const listen of removed) this.log.info(`tcp listener ${listen} removed: it takes no new connections, and its open ones drain`);
        return [...(added.length ? [`tcp listeners added: ${added.join(", ")}`] : []), ...(removed.length ? [`tcp listeners draining out: ${removed.join(", ")}`] : [])].join("; ");
      },
    };
  }

  stop(drainTimeoutMs: number): Promise<void> {
    return this.service.stop(drainTimeoutMs);
  }
}
