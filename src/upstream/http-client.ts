/**
 * lb's HTTP/1.1 client for backends, on Bun.connect: a keep-alive pool per backend, a connect timeout, and one timer
 * for every deadline (a sweep every few milliseconds while requests are out) instead of a timer per request.
 */
import {
  type UpstreamCall,
  type UpstreamClient,
  type UpstreamRequest,
  type UpstreamSettings,
  mayGoElsewhere,
} from "./client.ts";
import type { Failure } from "./failure.ts";
import { Exchange } from "./exchange.ts";
import { OriginPool, type PoolHooks, expire } from "./origin-pool.ts";
import { SwapSet } from "./swap-set.ts";

/**
 * How often deadlines (and clients that left) are checked while requests are out: the precision of --timeout and
 * --connect-timeout.
 */
const SWEEP_MS = 20;
/** How often idle connections are checked against the idle timeout, and streams against the read timeout. */
const IDLE_SWEEP_MS = 1000;

export class HttpClient implements UpstreamClient {
  readonly #pools = new Map<string, OriginPool>();
  /** Pools of backends that left, still passing answers on: their streams stay under the read timeout until done. */
  readonly #leaving = new Set<OriginPool>();
  /** Exchanges not yet answered, watched for their deadlines. */
  readonly #waiting = new SwapSet<Exchange>();
  #sweeper: Timer | null = null;
  readonly #idleSweeper: Timer;
  readonly #settle = (exchange: Exchange): boolean => {
    this.#waiting.delete(exchange);
    return this.#waiting.size > 0;
  };

  constructor(
    private settings: UpstreamSettings,
    private readonly hooks: PoolHooks = { onResend() {}, onProtocolError() {} },
  ) {
    this.#idleSweeper = setInterval(() => this.#closeIdle(), IDLE_SWEEP_MS);
    this.#idleSweeper.unref();
  }

  send(origin: string, request: UpstreamRequest): UpstreamCall {
    const exchange = new Exchange(origin, request, this.#settle);
    this.#waiting.add(exchange);
    this.#sweeper ??= this.#startSweeper();
    this.#pool(origin).send(exchange);
    return exchange;
  }

  #startSweeper(): Timer {
    return setInterval(() => this.#sweep(), SWEEP_MS);
  }

  configure(settings: UpstreamSettings): void {
    this.settings = settings;
  }

  forget(origin: string): void {
    const pool = this.#pools.get(origin);
    if (!pool) return;
    pool.forget();
    this.#pools.delete(origin);
    if (pool.streams > 0) this.#leaving.add(pool);
  }

  // The exchanges waiting are those #sweep watches already: the forwarder keeps no list of its own, which cost each
  // request a WeakMap lookup and a Set entry made and dropped (3.5 % of lb's CPU per request).
  callOff(origin: string, why: Failure): void {
    for (const exchange of this.#waiting.members()) {
      if (exchange.origin === origin && mayGoElsewhere(exchange.request)) exchange.cancel(why);
    }
  }

  connections(): { busy: number; idle: number } {
    let open = 0;
    let idle = 0;
    for (const pool of this.#pools.values()) {
      open += pool.open;
      idle += pool.idle;
    }
    return { busy: open - idle, idle };
  }

  close(): void {
    for (const origin of [...this.#pools.keys()]) this.forget(origin);
    clearInterval(this.#idleSweeper);
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  #pool(origin: string): OriginPool {
    let pool = this.#pools.get(origin);
    if (!pool) this.#pools.set(origin, (pool = new OriginPool(origin, () => this.settings, this.hooks)));
    return pool;
  }

  #sweep(): void {
    if (this.#waiting.size === 0) {
      clearInterval(this.#sweeper!);
      this.#sweeper = null;
      return;
    }
    const now = performance.now();
    for (const exchange of this.#waiting.members()) expire(exchange, now);
  }

  #closeIdle(): void {
    const now = performance.now();
    for (const pool of this.#pools.values()) pool.closeExpired(now);
    for (const pool of this.#leaving) {
      pool.closeExpired(now);
      if (pool.streams === 0) this.#leaving.delete(pool);
    }
  }
}
