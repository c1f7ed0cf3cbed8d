/**
 * What carries requests in a process that serves traffic: per pool, the upstream client (connections to its backends)
 * and the forwarder (one request's trip); in front of them, the routes that pick the pool. In the single process, or
 * in each worker with --workers.
 */
import type { AccessLog } from "./access-log.ts";
import { fallbackPool } from "./config/pools.ts";
import type { Config } from "./config/settings.ts";
import { forwarderTuning, upstreamSettings } from "./configure.ts";
import type { RequestHandler } from "./listeners.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { Pool, PoolEvent } from "./pool/pool.ts";
import { Forwarder } from "./proxy/forward.ts";
import { errorResponse } from "./proxy/responses.ts";
import { type ClientConnection, pathOf, startTrip } from "./proxy/trip.ts";
import { TripLog } from "./proxy/trip-log.ts";
import { RouteTable } from "./routing/routes.ts";
import type { UpstreamTls } from "./upstream/client.ts";
import { HttpClient } from "./upstream/http-client.ts";

/** A pool this process forwards to, with its own settings (the top level with the pool's over it). */
export interface ServedPool {
  name: string;
  pool: Pool;
  config: Config;
  tls: UpstreamTls | undefined;
  /** Settles when the pool's first health round is done; its requests wait for it (a pool a reload added). */
  checked?: Promise<void>;
}

/** One pool's forwarding. */
interface Lane {
  pool: Pool;
  upstream: HttpClient;
  forwarder: Forwarder;
  checked: Promise<void> | undefined;
}

/** At most one "no route" line this often. */
const NO_ROUTE_LOG_EVERY_MS = 1000;
/** How often a retired pool's in-flight count is looked at while it drains. */
const DRAIN_POLL_MS = 20;

export class DataPlane {
  readonly #lanes = new Map<string, Lane>();
  #routes: RouteTable;
  /** The one lane when there are no routes to look at: requests go straight to it, as before pools existed. */
  #only: Lane | null = null;
  readonly #unrouted: TripLog;
  #noRouteLoggedAt = Number.NEGATIVE_INFINITY;
  #noRouteUnlogged = 0;
  /** Requests are held until open(): the first health round is done, so the first one already avoids dead backends. */
  readonly #opened = Promise.withResolvers<void>();
  #open = false;

  constructor(
    config: Config,
    pools: readonly ServedPool[],
    private readonly metrics: Metrics,
    private readonly accessLog: AccessLog | null,
    private readonly log: Logger,
  ) {
    this.#unrouted = new TripLog(metrics, accessLog);
    this.#routes = this.#serve(config, pools);
  }

  readonly handle: RequestHandler = (request, client) =>
    this.#open ? this.#route(request, client) : this.#opened.promise.then(() => this.#route(request, client));

  #route(request: Request, client: ClientConnection): Promise<Response | undefined> {
    if (this.#only && !this.#only.checked) return this.#only.forwarder.handle(request, client);
    const path = pathOf(request.url);
    const match = this.#routes.match({ method: request.method, headers: request.headers, path });
    if (!match) return Promise.resolve(this.#noRoute(request, client));
    const lane = this.#lanes.get(match.pool)!;
    const upstreamPath = match.path === path ? undefined : match.path;
    if (lane.checked) return lane.checked.then(() => lane.forwarder.handle(request, client, upstreamPath));
    return lane.forwarder.handle(request, client, upstreamPath);
  }

  /**
   * No route takes the request and there is no default pool: lb's own 404, counted, in the access log, and said in
   * lb's log with what was asked (at most one line a second: a scanner must not flood it).
   */
  #noRoute(request: Request, client: ClientConnection): Response {
    const trip = startTrip(request, client);
    this.metrics.count("rejected", "no-route");
    const now = performance.now();
    if (now - this.#noRouteLoggedAt >= NO_ROUTE_LOG_EVERY_MS) {
      const skipped = this.#noRouteUnlogged ? ` (and ${this.#noRouteUnlogged} more since the last such line)` : "";
      this.log.info(`no route for ${request.method} ${request.headers.get("host") ?? "(no host)"}${trip.context.path}: answered 404${skipped}`);
      this.#noRouteLoggedAt = now;
      this.#noRouteUnlogged = 0;
    } else this.#noRouteUnlogged++;
    this.#unrouted.finish(trip, 404, 0);
    return errorResponse(404, "no route for this request", { "x-request-id": trip.requestId });
  }

  /** Lets requests through (those held so far go first). */
  open(): void {
    this.#open = true;
    this.#opened.resolve();
  }

  /** Requests waiting for a backend with room, over every pool. */
  get queued(): number {
    let queued = 0;
    for (const lane of this.#lanes.values()) queued += lane.forwarder.queued;
    return queued;
  }

  /** What a pool change means for requests: stuck ones move, waiting ones look again, a removed backend is forgotten. */
  onPoolEvent(poolName: string, event: PoolEvent): void {
    const lane = this.#lanes.get(poolName);
    if (!lane) return;
    if (event.type === "removed") {
      lane.upstream.forget(event.backend.url);
      this.metrics.backends.delete(event.backend.url);
    }
    // Requests stuck on a backend whose checks get no answer move elsewhere now, not at --timeout.
    if (event.type === "health" && event.to.status === "unhealthy" && event.to.unanswered) lane.forwarder.backendUnresponsive(event.backend);
    lane.forwarder.wakeWaitingRequests();
  }

  /**
   * A reload's pools and routes: kept pools take their new settings for requests (and connections) from now on, new
   * ones start serving, and pools no longer listed stop taking requests and drain (closed when idle, or at the drain
   * timeout).
   */
  reconfigure(config: Config, pools: readonly ServedPool[]): void {
    const listed = new Set(pools.map((p) => p.name));
    const retired = [...this.#lanes].filter(([name]) => !listed.has(name));
    for (const [name] of retired) this.#lanes.delete(name);
    this.#routes = this.#serve(config, pools);
    for (const [, lane] of retired) void drainLane(lane, config.drainTimeout);
  }

  /** Closes the connections to backends (after the listener drained). */
  close(): void {
    for (const lane of this.#lanes.values()) lane.upstream.close();
  }

  /** Makes `pools` the lanes (adding or retuning each) and returns the routes over them. */
  #serve(config: Config, pools: readonly ServedPool[]): RouteTable {
    for (const served of pools) {
      const lane = this.#lanes.get(served.name);
      if (lane) {
        lane.upstream.configure(upstreamSettings(served.config, served.tls));
        lane.forwarder.reconfigure(forwarderTuning(served.config));
      } else this.#lanes.set(served.name, this.#lane(served));
    }
    const fallback = fallbackPool(config);
    this.#only = config.routes.length === 0 && this.#lanes.size === 1 ? this.#lanes.get(fallback!)! : null;
    return new RouteTable(config.routes, fallback);
  }

  #lane({ pool, config, tls, checked }: ServedPool): Lane {
    const { metrics, log } = this;
    const upstream = new HttpClient(upstreamSettings(config, tls), {
      onResend: (url) => {
        metrics.of(url).resends++;
        log.debug(`resent a request to ${url} on a fresh connection: the reused one closed before answering`);
      },
    });
    const forwarder = new Forwarder({ pool, upstream, accessLog: this.accessLog, metrics, log, ...forwarderTuning(config) });
    const lane: Lane = { pool, upstream, forwarder, checked };
    void checked?.finally(() => (lane.checked = undefined));
    return lane;
  }
}

/** A pool a reload dropped: its requests in flight finish (until the deadline), then its connections close. */
async function drainLane(lane: Lane, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (lane.pool.backends.some((b) => b.inflight > 0) && Date.now() < deadline) await Bun.sleep(DRAIN_POLL_MS);
  lane.upstream.close();
}
