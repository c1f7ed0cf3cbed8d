/**
 * lb's layer-4 side: the [[tcp]] listeners, by listen address, and their connections. A reload binds the addresses
 * it adds before anything changes (one in use refuses the reload), reroutes the kept ones, and drains the dropped
 * ones; stop drains them all. One timer closes connections idle past their entry's idle-timeout and clients that
 * send no ClientHello in time. Nothing runs without [[tcp]] entries.
 */
import type { ListenAddress } from "../config/types.ts";
import type { AccessLog } from "../log/access-log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Tracer } from "../tracing/spans.ts";
import type { TcpConnection } from "./tcp-connection.ts";
import { type TcpEntry, type TcpLane, TcpListener } from "./tcp-listener.ts";
import { TcpStats } from "./tcp-stats.ts";

/** One listen address and its entries (configure.ts builds them). */
export interface TcpListenerSettings {
  listen: string;
  address: ListenAddress;
  entries: TcpEntry[];
}

/** A listen address lb could not bind. */
export class TcpListenError extends Error {
  override name = "TcpListenError";
}

/** How long a client of a listener that routes by name has to send its ClientHello. */
export const HELLO_TIMEOUT_MS = 10_000;
/** How often idle connections are looked for: idle timeouts are at least a second, so they end within 1 s of it. */
const SWEEP_MS = 1000;
const DRAIN_POLL_MS = 50;

export class TcpService {
  readonly stats = new TcpStats();
  readonly #listeners = new Map<string, TcpListener>();
  readonly #draining = new Set<TcpListener>();
  #lanes: ReadonlyMap<string, TcpLane> = new Map();
  #sweep: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly parts: { metrics: Metrics; accessLog: AccessLog | null; tracer?: Tracer | null },
    private readonly helloTimeoutMs = HELLO_TIMEOUT_MS,
  ) {}

  /** The listen addresses and the ports they are bound to (a test's port 0 is told here). */
  ports(): Map<string, number> {
    return new Map([...this.#listeners].map(([listen, listener]) => [listen, listener.port]));
  }

  /**
   * Binds the addresses `listeners` adds (throws TcpListenError, having closed what it bound, when one cannot be);
   * `apply` then makes the change: the lanes (a reload's new pools among them), kept listeners rerouted, dropped ones
   * drained within `drainTimeoutMs`.
   */
  prepare(listeners: readonly TcpListenerSettings[]): { apply(lanes: ReadonlyMap<string, TcpLane>, drainTimeoutMs: number): { added: string[]; removed: string[] } } {
    const bound: TcpListener[] = [];
    for (const settings of listeners.filter((l) => !this.#listeners.has(l.listen))) {
      try {
        bound.push(this.#bind(settings));
      } catch (error) {
        for (const listener of bound) listener.stopAccepting();
        const code = (error as { code?: string }).code;
        const why = code === "EADDRINUSE" ? "the address is in use" : code === "EACCES" ? "not allowed (a port below 1024 needs privileges)" : (error as Error).message;
        throw new TcpListenError(`[[tcp]] listen ${settings.listen}: cannot listen: ${why}`);
      }
    }
    return {
      apply: (lanes, drainTimeoutMs) => {
        this.#lanes = lanes;
        for (const settings of listeners) this.#listeners.get(settings.listen)?.reroute(settings.entries);
        for (const listener of bound) this.#listeners.set(listener.listen, listener);
        const removed = [...this.#listeners.keys()].filter((listen) => !listeners.some((l) => l.listen === listen));
        for (const listen of removed) {
          const listener = this.#listeners.get(listen)!;
          this.#listeners.delete(listen);
          void this.#drain(listener, drainTimeoutMs);
        }
        this.#sweepWhileNeeded();
        return { added: bound.map((l) => l.listen), removed };
      },
    };
  }

  /** Connections open now, over every listener. */
  get open(): number {
    let open = 0;
    for (const listener of [...this.#listeners.values(), ...this.#draining]) open += listener.connections.size;
    return open;
  }

  /** Stops accepting everywhere; open connections finish within the drain timeout, then are closed. */
  async stop(drainTimeoutMs: number): Promise<void> {
    const all = [...this.#listeners.values()];
    this.#listeners.clear();
    await Promise.all(all.map((listener) => this.#drain(listener, drainTimeoutMs)));
  }

  #bind({ listen, address, entries }: TcpListenerSettings): TcpListener {
    return new TcpListener(address, listen, entries, {
      lanes: () => this.#lanes,
      metrics: this.parts.metrics,
      counts: this.stats.of(listen),
      ended: (line) => this.parts.accessLog?.writeConnection(line),
      tracer: this.parts.tracer ?? null,
    });
  }

  async #drain(listener: TcpListener, timeoutMs: number): Promise<void> {
    listener.stopAccepting();
    this.#draining.add(listener);
    const deadline = performance.now() + timeoutMs;
    while (listener.connections.size > 0 && performance.now() < deadline) await Bun.sleep(DRAIN_POLL_MS);
    for (const connection of [...listener.connections]) connection.close("drained");
    this.#draining.delete(listener);
    this.#sweepWhileNeeded();
  }

  /** The idle sweep runs while there is a listener. */
  #sweepWhileNeeded(): void {
    const needed = this.#listeners.size + this.#draining.size > 0;
    if (needed && !this.#sweep) {
      this.#sweep = setInterval(() => this.#closeIdle(performance.now()), SWEEP_MS);
      this.#sweep.unref();
    } else if (!needed && this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  #closeIdle(now: number): void {
    for (const listener of [...this.#listeners.values(), ...this.#draining]) {
      for (const connection of [...listener.connections]) closeIfIdle(connection, now, this.helloTimeoutMs);
    }
  }
}

function closeIfIdle(connection: TcpConnection, now: number, helloTimeoutMs: number): void {
  if (connection.phase === "hello" && now - connection.startedAt > helloTimeoutMs) connection.close("hello-timeout");
  else if (connection.phase === "relaying" && now - connection.lastActivity > connection.idleTimeoutMs) connection.close("idle-timeout");
}
