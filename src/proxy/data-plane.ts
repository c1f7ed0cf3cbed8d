/**
 * What carries requests in a process that serves traffic: per pool, the upstream client (connections to its backends)
 * and the forwarder (one request's trip); in front of them, the routes that pick the pool. In the single process, or
 * in each worker with --workers.
 */
import type { AccessLog } from "../log/access-log.ts";
import type { Cidr } from "../net/ip.ts";
import type { RouteSpec } from "../config/types.ts";
import { EdgePolicy, type EdgeSettings, type RateLimitSettings } from "../edge/policy.ts";
import { RateLimiter } from "../edge/rate-limit.ts";
import type { RequestHandler } from "../front/listeners.ts";
import { type BeforeTrip, HookCalls } from "../hooks/calls.ts";
import { takenHeaders } from "../hooks/context.ts";
import type { HookSet } from "../hooks/hook-set.ts";
import { type Logger, ThrottledLine } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Backend } from "../pool/backend.ts";
import { Departures } from "../pool/departures.ts";
import type { Pool, PoolEvent } from "../pool/pool.ts";
import { type Refusal, refusal } from "./admission.ts";
import { Forwarder } from "./forward.ts";
import type { ForwarderTuning } from "./forwarder-options.ts";
import { errorResponse } from "./responses.ts";
import { type ClientConnection, type Trip, startTrip } from "./trip.ts";
import { TripLog } from "./trip-log.ts";
import { RouteTable } from "../routing/routes.ts";
import type { Tracer } from "../tracing/spans.ts";
import type { UpstreamSettings } from "../upstream/client.ts";
import { HttpClient } from "../upstream/http-client.ts";

/** How a pool is forwarded to: its settings (the top level with the pool's over it; configure.ts builds them). */
export interface LaneSettings {
  /** Connections to its backends. */
  upstream: UpstreamSettings;
  /** One request's trip: the policy, retries, limits and timeouts. */
  forwarding: ForwarderTuning;
}

/** A pool this process forwards to. */
export interface ServedPool extends LaneSettings {
  name: string;
  pool: Pool;
  /** Settles when the pool's first health round is done; its requests wait for it (a pool a reload added). */
  checked?: Promise<void>;
}

/** The lb-wide settings of the data plane (configure.ts builds them). */
export interface DataPlaneSettings {
  routes: readonly RouteSpec[];
  /** The pool requests no route takes go to; null: none (lb's 404). */
  fallbackPool: string | null;
  /** Most client requests and tunnels open at once; 0 means no limit. */
  maxConnections: number;
  /** The hooks' time budget per call, in ms. */
  hooksTimeoutMs: number;
  /** How long a pool a reload dropped may take to finish its requests, in ms. */
  drainTimeoutMs: number;
  /** --trusted-proxies: peers whose forwarded headers name the client; null when none. */
  trustedProxies: readonly Cidr[] | null;
  /** The edge policies: each route's (its own settings over its pool's), and each pool's for requests no route took. */
  edge: { routes: ReadonlyMap<RouteSpec, EdgeSettings>; pools: ReadonlyMap<string, EdgeSettings> };
}

/** The edge policies compiled, null where one does nothing. */
interface Policies {
  routes: ReadonlyMap<RouteSpec, EdgePolicy | null>;
  pools: ReadonlyMap<string, EdgePolicy | null>;
}

/** One pool's forwarding. */
interface Lane {
  name: string;
  pool: Pool;
  upstream: HttpClient;
  forwarder: Forwarder;
  checked: Promise<void> | undefined;
}

/** At most one "no route" line this often. */
const NO_ROUTE_LOG_EVERY_MS = 1000;
/** How often a retired pool's in-flight count is looked at while it drains. */
const DRAIN_POLL_MS = 20;
/** How often a backend a pool let go with requests still in flight is looked at until they are over. */
const DEPARTURE_POLL_MS = 250;

export class DataPlane {
  readonly #lanes = new Map<string, Lane>();
  /** Lanes of pools a reload dropped, while their requests finish: their backends are alive until then. */
  readonly #draining = new Set<Lane>();
  /** Decides when a backend's address has left every pool here; its counts go then (DNS churn would grow them). */
  readonly #departures = new Departures(
    () => [...this.#lanes.values(), ...this.#draining].map((lane) => lane.pool),
    (url) => this.metrics.backends.delete(url),
  );
  #routes: RouteTable;
  /** The one lane when there are no routes and no hooks: requests go straight to it, with nothing to decide. */
  #only: Lane | null = null;
  #policies: Policies = { routes: new Map(), pools: new Map() };
  /** The one lane's policy (see #only); null when it has none. */
  #onlyPolicy: EdgePolicy | null = null;
  /** Rate-limit tables by what they count (edge/policy.ts RateLimitSettings.table) and their limit: a reload keeps them. */
  #limiters = new Map<string, RateLimiter>();
  /** Logs the requests lb or a hook responded to before any pool: no route, a refusal, a hook's own response. */
  readonly #ownResponses: TripLog;
  readonly #noRouteLine = new ThrottledLine(NO_ROUTE_LOG_EVERY_MS);
  readonly #hooks: HookCalls | null;
  /** The settings in force. */
  #settings: DataPlaneSettings;
  /** Requests are held until open(): the first health round is done, so the first one already avoids dead backends. */
  readonly #opened = Promise.withResolvers<void>();
  #open = false;

  constructor(
    settings: DataPlaneSettings,
    pools: readonly ServedPool[],
    private readonly metrics: Metrics,
    private readonly accessLog: AccessLog | null,
    private readonly log: Logger,
    /** The hooks file's hooks, reloaded when it changes; null without --hooks. */
    hooks: HookSet | null,
    /** Starts each request's trace; null when tracing is off. */
    private readonly tracer: Tracer | null = null,
  ) {
    this.#ownResponses = new TripLog(metrics, accessLog);
    this.#settings = settings;
    this.#hooks = hooks && new HookCalls(() => hooks.current, () => this.#settings.hooksTimeoutMs, log, (hook) => metrics.count("hookErrors", hook));
    this.#routes = this.#serve(settings, pools);
  }

  readonly handle: RequestHandler = (request, client) => {
    if (!this.#open) return this.#whenOpen(request, client);
    return this.#route(request, client, client.waited);
  };

  // The per-request methods make no closure on their common path: a function that has one allocates its scope on
  // every call. Rare paths that need one get a method of their own, like this.
  #whenOpen(request: Request, client: ClientConnection): Promise<Response | undefined> {
    return this.#opened.promise.then(() => this.#route(request, client, true));
  }

  /**
   * Refuses what lb never forwards, routes the rest (and runs its hooks, when there are some), then hands the trip
   * to the pool's lane.
   */
  #route(request: Request, client: ClientConnection, waited: boolean): Promise<Response | undefined> {
    const trip = startTrip(request, client, this.#settings.trustedProxies);
    if (this.tracer) trip.trace = this.tracer.start(trip);
    // Cancelled while it waited (the listener's turn, see listeners.ts, or lb's start): not counted against
    // --max-connections, not refused, just logged. A request that did not wait has no signal read: that costs Bun work.
    if (waited && request.signal.aborted) return Promise.resolve(this.#ownResponses.clientGone(trip));
    const refused = refusal(request, trip.fields, trip.path, client, this.#settings.maxConnections);
    if (refused) return this.#refuse(trip, refused);
    // No routes, no hooks: nothing to decide but the one pool's policy.
    if (this.#only && !this.#only.checked) {
      if (trip.trace) trip.trace.pool = this.#only.name;
      if (!this.#onlyPolicy) return this.#only.forwarder.handle(trip);
      trip.policy = this.#onlyPolicy;
      const edge = trip.policy.admit(trip);
      return edge ? this.#refuse(trip, edge) : this.#only.forwarder.handle(trip);
    }
    const pool = this.#poolFor(trip);
    // The route's policy (or its pool's) is decided here, before hooks: a hook that picks another pool keeps it.
    const edge = trip.policy?.admit(trip);
    if (edge) return this.#refuse(trip, edge);
    if (!this.#hooks) return this.#forward(trip, pool);
    const before = this.#hooks.beforeTrip(trip, pool);
    return before instanceof Promise ? this.#afterHooks(trip, before) : this.#followHooks(trip, before);
  }

  #afterHooks(trip: Trip, before: Promise<BeforeTrip>): Promise<Response | undefined> {
    return before.then((done) => this.#followHooks(trip, done));
  }

  /** What onRequest decided, checked (lb only ever sends to its own pools and backends) and made the trip's plan. */
  #followHooks(trip: Trip, before: BeforeTrip): Promise<Response | undefined> {
    const hooks = this.#hooks!;
    if ("response" in before) return this.#respond(trip, before.response);
    const { ctx } = before;
    const lane = ctx.pool === null ? undefined : this.#lanes.get(ctx.pool);
    if (ctx.pool !== null && !lane) return this.#respond(trip, hooks.refuse(trip, `chose pool ${JSON.stringify(ctx.pool)}, which lb does not have; its pools are ${[...this.#lanes.keys()].join(", ")}`));
    if (ctx.backend !== null) {
      trip.preferred = lane?.pool.find(ctx.backend);
      if (!trip.preferred) return this.#respond(trip, hooks.refuse(trip, `chose backend ${ctx.backend}, which is not in pool ${ctx.pool}`));
    }
    trip.upstreamPath = ctx.path;
    // The hook's copy of the headers when it took one; the client's own when it never looked at them.
    trip.upstreamHeaders = (takenHeaders(ctx) as Headers | undefined) ?? trip.upstreamHeaders;
    trip.onResponse = hooks.onResponse(trip, ctx);
    return this.#forward(trip, ctx.pool);
  }

  #forward(trip: Trip, poolName: string | null): Promise<Response | undefined> {
    if (poolName === null) return this.#noRoute(trip);
    const lane = this.#lanes.get(poolName)!;
    if (trip.trace) trip.trace.pool = poolName;
    if (!lane.checked) return lane.forwarder.handle(trip);
    return this.#afterFirstCheck(trip, poolName, lane, lane.checked);
  }

  /** A pool a reload added: its requests wait for its first health round. */
  #afterFirstCheck(trip: Trip, poolName: string, lane: Lane, checked: Promise<void>): Promise<Response | undefined> {
    return checked.then(() => {
      if (this.#lanes.get(poolName) === lane) return lane.forwarder.handle(trip);
      // A later reload dropped the pool while the request waited for its first health round: routed anew.
      return this.#forward(trip, this.#poolFor(trip));
    });
  }

  /** The pool the routes choose (null: none), with the path they send and the route's (or the pool's) policy. */
  #poolFor(trip: Trip): string | null {
    const { method, headers } = trip.request;
    const match = this.#routes.match({ method, headers, host: trip.fields.host, path: trip.path });
    trip.upstreamPath = match?.path ?? trip.path;
    const prefix = match?.route?.pathPrefix;
    if (trip.trace && prefix) trip.trace.route = `${prefix}*`;
    if (!match) return null;
    trip.policy = (match.route ? this.#policies.routes.get(match.route) : this.#policies.pools.get(match.pool)) ?? null;
    return match.pool;
  }

  #refuse(trip: Trip, { status, detail, headers, reason }: Refusal): Promise<Response> {
    if (reason) this.metrics.count("rejected", reason);
    return this.#respond(trip, errorResponse(status, detail, { ...headers, "x-request-id": trip.requestId }));
  }

  /**
   * No route takes the request and there is no default pool: lb's own 404, counted, in the access log, and said in
   * lb's log with what was asked (at most one line a second: a scanner must not flood it).
   */
  #noRoute(trip: Trip): Promise<Response> {
    const { method, headers } = trip.request;
    this.metrics.count("rejected", "no-route");
    this.#noRouteLine.say((line) => this.log.info(line), `no route for ${method} ${headers.get("host") ?? "(no host)"}${trip.path}: answered 404`);
    return this.#respond(trip, errorResponse(404, "no route for this request", { "x-request-id": trip.requestId }));
  }

  /** A response from lb itself or a hook, not a backend: in the access log all the same. */
  #respond(trip: Trip, response: Response): Promise<Response> {
    this.#ownResponses.finish(trip, response.status, 0);
    return Promise.resolve(response);
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
      lane.upstream.forget(event.backend.url); // this pool's connections to it; another pool has its own
      void this.#depart(event.backend);
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
  reconfigure(settings: DataPlaneSettings, pools: readonly ServedPool[]): void {
    const listed = new Set(pools.map((p) => p.name));
    const retired = [...this.#lanes].filter(([name]) => !listed.has(name));
    for (const [name] of retired) this.#lanes.delete(name);
    this.#settings = settings;
    this.#routes = this.#serve(settings, pools);
    for (const [, lane] of retired) {
      this.#draining.add(lane);
      void drainLane(lane, settings.drainTimeoutMs).then(() => {
        this.#draining.delete(lane);
        for (const backend of lane.pool.backends) void this.#depart(backend);
      });
    }
  }

  /**
   * A backend a pool let go: once its requests are over (a drain that reached its deadline left some in flight, and
   * their answers still count), its address leaves with it, unless a pool has it (a reload moved it there).
   */
  async #depart(backend: Backend): Promise<void> {
    while (backend.inflight > 0) await Bun.sleep(DEPARTURE_POLL_MS);
    this.#departures.left(backend.url);
  }

  /** Closes the connections to backends (after the listener drained). */
  close(): void {
    for (const lane of this.#lanes.values()) lane.upstream.close();
  }

  /** Makes `pools` the lanes (adding or retuning each) and returns the routes over them. */
  #serve({ routes, fallbackPool, edge }: DataPlaneSettings, pools: readonly ServedPool[]): RouteTable {
    this.#policies = this.#compile(edge);
    for (const served of pools) {
      const lane = this.#lanes.get(served.name);
      if (lane) {
        lane.upstream.configure(served.upstream);
        lane.forwarder.reconfigure(served.forwarding);
      } else this.#lanes.set(served.name, this.#lane(served));
    }
    this.#only = !this.#hooks && routes.length === 0 && this.#lanes.size === 1 ? this.#lanes.get(fallbackPool!)! : null;
    this.#onlyPolicy = this.#only ? (this.#policies.pools.get(this.#only.name) ?? null) : null;
    return new RouteTable(routes, fallbackPool);
  }

  /** The policies of a config; rate tables whose count and limit are unchanged carry on, the rest start empty. */
  #compile(edge: DataPlaneSettings["edge"]): Policies {
    const limiters = new Map<string, RateLimiter>();
    const compile = (settings: EdgeSettings) => {
      const limit = settings.rateLimit;
      const policy = new EdgePolicy(settings, limit && { table: this.#limiterFor(limit, limiters), key: limit.key });
      return policy.active ? policy : null;
    };
    const each = <K>(settings: ReadonlyMap<K, EdgeSettings>) => new Map([...settings].map(([key, one]) => [key, compile(one)]));
    const policies = { routes: each(edge.routes), pools: each(edge.pools) };
    this.#limiters = limiters;
    return policies;
  }

  #limiterFor({ table, rate, burst }: RateLimitSettings, kept: Map<string, RateLimiter>): RateLimiter {
    const id = `${table} ${rate.count}/${rate.periodMs} burst ${burst}`;
    const limiter = kept.get(id) ?? this.#limiters.get(id) ?? new RateLimiter(rate, burst);
    kept.set(id, limiter);
    return limiter;
  }

  #lane({ name, pool, upstream: settings, forwarding, checked }: ServedPool): Lane {
    const { metrics, log } = this;
    const strayWarnings = new Map<string, ThrottledLine>();
    const upstream = new HttpClient(settings, {
      onResend: (url) => {
        metrics.of(url).resends++;
        log.debug(`resent a request to ${url} on a fresh connection: the reused one closed before answering`);
      },
      onProtocolError: (url, kind, detail) => {
        if (kind === "malformed") return void metrics.of(url).malformedResponses++; // the 502 it causes is logged
        metrics.of(url).strayBytes++;
        let warning = strayWarnings.get(url);
        if (!warning) strayWarnings.set(url, (warning = new ThrottledLine(STRAY_WARNING_INTERVAL_MS)));
        const name = pool.backends.find((backend) => backend.url === url)?.name ?? url;
        warning.say(
          (line) => log.warn(line),
          `backend ${name} sent bytes nobody asked for (${detail}): the connection was closed, no client got them; ` +
            "a body after a 204, 304 or HEAD answer, or an answer sent twice, means the backend is broken",
        );
      },
    });
    const forwarder = new Forwarder({ pool, upstream, accessLog: this.accessLog, metrics, log, ...forwarding });
    const lane: Lane = { name, pool, upstream, forwarder, checked };
    void checked?.finally(() => (lane.checked = undefined));
    return lane;
  }
}

/** A backend that keeps sending stray bytes is named in the log at most this often. */
const STRAY_WARNING_INTERVAL_MS = 60_000;

/**
 * A pool a reload dropped: its requests finish (until the deadline) — those still reading a body or queued, and
 * answers and tunnels still streaming — then its connections close.
 */
async function drainLane(lane: Lane, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const busy = () => lane.forwarder.unanswered > 0 || lane.pool.backends.some((b) => b.inflight > 0);
  while (busy() && Date.now() < deadline) await Bun.sleep(DRAIN_POLL_MS);
  lane.upstream.close();
}
