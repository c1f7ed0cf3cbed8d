/**
 * One request's trip, top to bottom: pick candidates, send to a backend through the upstream client, retry the next
 * candidate when that is safe, and stream the answer back. Every ending is logged once in the access log.
 */
import type { Policy, RequestContext } from "../balance/policy.ts";
import type { StickySessions } from "../balance/sticky.ts";
import { formatDuration } from "../config/duration.ts";
import type { AccessLog } from "../access-log.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type Backend, isAvailable } from "../pool/backend.ts";
import type { Pool } from "../pool/pool.ts";
import type { UpstreamAnswer, UpstreamCall, UpstreamClient } from "../upstream/client.ts";
import { isFailure } from "../upstream/client.ts";
import { type Failure, failure } from "../upstream/failure.ts";
import { failWhenIdle, type OutgoingBody, prepareBody, untypedBody } from "./body.ts";
import { type ClientInfo, upstreamRequestFields } from "./headers.ts";
import { errorResponse } from "./responses.ts";
import { isIdempotent, mayRetry, retryBudgetAllows } from "./retry.ts";
import { QueueFull, Waitlist } from "./waitlist.ts";
import { Tunnel, isWebSocketUpgrade, openUpstream, tunnelRequestHeaders, webSocketUrl } from "./websocket.ts";

/** What the forwarder works with; fixed for lb's lifetime. */
export interface ForwarderDeps {
  pool: Pool;
  /** The transport to backends. */
  upstream: UpstreamClient;
  accessLog: AccessLog | null;
  metrics: Metrics;
  log: Logger;
}

/** How it behaves; a config reload replaces these. */
export interface ForwarderTuning {
  policy: Policy;
  /** Pins clients to backends by cookie; null when sticky sessions are off. */
  sticky: StickySessions | null;
  /** Longest wait for a backend's response headers, in ms. */
  timeoutMs: number;
  /** Further backends to try after a failed attempt. */
  retries: number;
  /** Retries in flight may be at most this percentage of requests in flight (but always at least 3). */
  retryBudgetPercent: number;
  /** Most requests in flight to one backend; 0 means no limit. */
  maxInflight: number;
  /** Requests waiting for a backend with room (when all are at maxInflight), and for how long at most. */
  queueSize: number;
  queueTimeoutMs: number;
  /** Most client requests (and tunnels) open at once; 0 means no limit. */
  maxConnections: number;
  /** Longest silence from a client streaming a request body before lb gives up on it (408). */
  clientTimeoutMs: number;
  /** Sent with 503s: when a backend might be back (one health interval). */
  retryAfterSeconds: number;
  debug: boolean;
}

export type ForwarderOptions = ForwarderDeps & ForwarderTuning;

/** The client side of one request, as the server edge sees it. */
export interface ClientConnection extends ClientInfo {
  /** Requests and WebSocket tunnels open on the listener, this one included. */
  openRequests: number;
  /** Suspends (true) or restores (false) the client connection's idle timeout while lb waits on a backend. */
  holdOpen(waiting: boolean): void;
  /** Completes a WebSocket upgrade with this tunnel (and response headers); false if the request cannot upgrade. */
  upgrade(tunnel: Tunnel, headers: Record<string, string>): boolean;
}

type Fields = Array<[string, string]>;

/** Status logged when the client went away before it got an answer (nginx's convention). */
const CLIENT_CLOSED = 499;
/** Resets from one backend this close together mean it died (a stale keep-alive socket resets one request). */
const RESET_BURST_MS = 100;
const UNRESPONSIVE = failure("reset", "backend stopped answering");

/** What the access log needs to know about one request, filled in as the trip goes. */
interface Trip {
  request: Request;
  /** The client's X-Request-Id when it is a sane one, else a new UUID; sent to the backend and back to the client. */
  requestId: string;
  client: ClientConnection;
  context: RequestContext;
  /** The backend a sticky cookie named, if it is available. */
  pinned: Backend | undefined;
  started: number;
  attempts: number;
  /** The backend that answered, or was last tried. */
  target: Backend | null;
  upstreamMs: number;
  /** Set when the client stopped sending its streamed body for longer than the client timeout. */
  bodyStalled: boolean;
}

/** How an attempt can end because of the client: it left, or stopped sending its body. */
type ClientEnd = "client-gone" | "client-stalled";
type AttemptResult = Response | Failure | ClientEnd;

export class Forwarder {
  /** Woken whenever a backend finishes a request, for requests waiting for one with room. */
  readonly #roomQueue: Waitlist;
  #requestsInFlight = 0;
  #retriesInFlight = 0;
  /** The latest reset from each backend and how many came close together before it. */
  readonly #resetBursts = new WeakMap<Backend, { at: number; count: number }>();
  /** Per backend, the attempts that may go elsewhere if it stops answering: idempotent, replayable, unanswered. */
  readonly #movable = new WeakMap<Backend, Set<UpstreamCall>>();

  constructor(private options: ForwarderOptions) {
    this.#roomQueue = new Waitlist(options.queueSize);
  }

  /** New tuning applies to requests that start from now on. */
  reconfigure(tuning: ForwarderTuning): void {
    this.options = { ...this.options, ...tuning };
    this.#roomQueue.maxSize = tuning.queueSize;
  }

  /** Requests waiting for a backend with room. */
  get queued(): number {
    return this.#roomQueue.size;
  }

  /** Resolves to the response, or to undefined when the request became a WebSocket tunnel. */
  async handle(request: Request, client: ClientConnection): Promise<Response | undefined> {
    const trip: Trip = {
      request,
      requestId: requestIdOf(request.headers),
      client,
      context: { clientIp: client.ip, path: pathOf(request.url), headers: request.headers },
      pinned: undefined,
      started: performance.now(),
      attempts: 0,
      target: null,
      upstreamMs: 0,
      bodyStalled: false,
    };
    if (this.options.debug) this.#logRequest(trip);
    const { maxConnections } = this.options;
    if (maxConnections > 0 && client.openRequests > maxConnections) {
      return this.#fail(trip, 503, "lb is at its connection limit", { ...this.#retryAfter(), connection: "close" });
    }
    // lb is not a forward proxy: CONNECT would ask it to open a tunnel to a host of the client's choosing.
    if (request.method === "CONNECT") {
      return this.#fail(trip, 405, "lb does not tunnel CONNECT", { allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" });
    }
    // RFC 9112 §3.2: a request with several Host headers or an invalid one gets a 400 (backends build URLs from it).
    const host = request.headers.get("host");
    if (host !== null && !VALID_HOST.test(host)) return this.#fail(trip, 400, "invalid Host header");
    if (this.options.pool.available().length === 0) return this.#fail(trip, 503, "no healthy backend", this.#retryAfter());
    if (isWebSocketUpgrade(request.headers)) return this.#tunnel(trip);
    this.#requestsInFlight++;
    try {
      return await this.#forward(trip);
    } finally {
      this.#requestsInFlight--;
      trip.client.holdOpen(false);
    }
  }

  /**
   * The backend went down because its checks get no answer (frozen, or its host gone): requests still waiting on it
   * would only meet --timeout. Those safe to send again (idempotent, body kept, nothing received yet) go to another
   * backend now; the others wait on, as the backend may yet answer them.
   */
  backendUnresponsive(backend: Backend): void {
    for (const call of this.#movable.get(backend) ?? []) call.cancel(UNRESPONSIVE);
  }

  /** Wakes everyone waiting for room: the pool changed (a backend came back, was added, or left its ejection). */
  poolChanged(): void {
    while (this.#roomQueue.wakeOne());
  }

  /**
   * The policy's order for this request (a sticky backend first); null when no backend is available. Called after
   * any wait, so the choice sees the pool as it is when the request is sent, not as it was on arrival.
   */
  #candidates(trip: Trip): readonly Backend[] | null {
    const available = this.options.pool.available();
    if (available.length === 0) return null;
    const ordered = this.options.policy.candidates(available, trip.context);
    const { sticky } = this.options;
    if (!sticky) return ordered;
    trip.pinned = sticky.pinned(available, trip.context.headers);
    return sticky.prefer(trip.pinned, ordered);
  }

  async #forward(trip: Trip): Promise<Response> {
    const { request } = trip;
    // Read (when small) while the client's idle timeout still runs: a client that never sends its body is closed
    // by it, and it holds no upstream slot meanwhile.
    let body: OutgoingBody;
    try {
      body = await prepareBody(request);
    } catch {
      return this.#clientGone(trip);
    }
    if (!body.replayable) {
      body = { replayable: false, body: failWhenIdle(body.body, this.options.clientTimeoutMs, () => (trip.bodyStalled = true)) };
    }
    trip.client.holdOpen(true);
    const headers = upstreamRequestFields(request.headers, trip.client, trip.requestId);
    const queueDeadline = Date.now() + this.options.queueTimeoutMs;
    let lastFailure: Failure | undefined;
    for (;;) {
      const candidates = this.#candidates(trip);
      if (!candidates) break;
      let full = false;
      for (const backend of candidates) {
        if (trip.attempts > this.options.retries) break;
        if (!isAvailable(backend)) continue; // marked down by another request since this one started
        if (!this.#hasRoom(backend)) {
          full = true;
          continue;
        }
        const result = await this.#attemptCounted(backend, trip, headers, body);
        if (result instanceof Response) return result;
        if (result === "client-gone") return this.#clientGone(trip);
        if (result === "client-stalled") {
          return this.#fail(trip, 408, `request body stalled for ${formatDuration(this.options.clientTimeoutMs)}`, { connection: "close" });
        }
        lastFailure = result;
        if (result.kind === "timeout") {
          return this.#fail(trip, 504, `backend did not answer within ${formatDuration(this.options.timeoutMs)}`);
        }
        if (!mayRetry(result.kind, request.method, body.replayable)) break;
        if (!this.#budgetAllows(backend, result)) break;
      }
      // Every usable backend was at its limit before any attempt: queue for room, then choose again.
      if (!full || trip.attempts > 0) break;
      const waited = await this.#waitForRoom(trip, queueDeadline);
      if (waited) return waited;
    }
    if (!lastFailure) return this.#fail(trip, 503, "no healthy backend", this.#retryAfter());
    return this.#fail(trip, 502, `backend failed (${lastFailure.reason})`);
  }

  /**
   * A WebSocket: the backend handshake first (candidates in the policy's order, like any request; a handshake is
   * safe to try elsewhere), then the client's upgrade. The tunnel counts as one request in flight until it closes.
   */
  async #tunnel(trip: Trip): Promise<Response | undefined> {
    const candidates = this.#candidates(trip) ?? [];
    const headers = tunnelRequestHeaders(new Headers(upstreamRequestFields(trip.request.headers, trip.client, trip.requestId)));
    const protocols = (trip.request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
    for (const backend of candidates) {
      if (trip.attempts > this.options.retries) break;
      if (!isAvailable(backend)) continue;
      trip.attempts++;
      trip.target = backend;
      const sent = performance.now();
      const upstream = await openUpstream(webSocketUrl(backend.url, trip.context.path), headers, protocols, this.options.timeoutMs);
      if (!upstream) continue;
      trip.upstreamMs = performance.now() - sent;
      backend.inflight++;
      const metrics = this.options.metrics.of(backend.url);
      const tunnel = new Tunnel(upstream, () => {
        metrics.tunnelsOpen--;
        this.#requestDone(backend);
        this.#logAccess(trip, 101, 0);
      });
      const answer: Record<string, string> = { "x-request-id": trip.requestId };
      if (upstream.protocol) answer["sec-websocket-protocol"] = upstream.protocol;
      if (!trip.client.upgrade(tunnel, answer)) {
        upstream.close(1000, "client could not upgrade");
        this.#requestDone(backend);
        return this.#fail(trip, 400, "this request cannot be upgraded to a WebSocket");
      }
      metrics.tunnels++;
      metrics.tunnelsOpen++;
      return undefined;
    }
    return this.#fail(trip, 502, "no backend accepted the WebSocket handshake");
  }

  /** One attempt, with its bookkeeping: stats, retry budget, connect-failure marking, outlier outcomes, latency. */
  async #attemptCounted(backend: Backend, trip: Trip, headers: Fields, body: OutgoingBody): Promise<AttemptResult> {
    const isRetry = trip.attempts > 0;
    trip.attempts++;
    trip.target = backend;
    backend.stats.requests++;
    if (isRetry) {
      backend.stats.retries++;
      this.options.metrics.of(backend.url).retries++;
      this.#retriesInFlight++;
    }
    const started = performance.now();
    const result = await this.#attempt(backend, trip, headers, body);
    if (isRetry) this.#retriesInFlight--;
    if (result === "client-gone" || result === "client-stalled") return result;
    const failed = !(result instanceof Response) || result.status >= 500;
    if (failed) backend.stats.errors++;
    if (!(result instanceof Response) && result.detail) {
      this.options.log.warn(`backend ${backend.name} answered ${trip.request.method} ${trip.context.path} with a ${result.reason}: ${result.detail}`);
    }
    // A failure counts as a slow answer, so a latency-aware policy moves away from a backend that hangs or errs.
    this.options.policy.observe?.(backend, result instanceof Response ? trip.upstreamMs : performance.now() - started);
    const { pool } = this.options;
    // Only a refused connection proves a backend down. A reset may be a stale keep-alive socket the backend closed
    // just as it was reused; it is retried (when safe) and counts toward outlier ejection instead.
    if (!(result instanceof Response) && result.kind === "connect") {
      this.options.metrics.of(backend.url).connectErrors++;
      pool.recordConnectFailure(backend, `${result.reason} (seen forwarding a request)`);
    } else pool.recordOutcome(backend, failed);
    return result;
  }

  /**
   * Whether the retry budget lets this failure be tried elsewhere. The budget guards backends from repeats of work
   * they may have done when many fail at once; failing over from a backend that is gone is never held back: a refused
   * connection did no work, and a backend out of rotation, or one resetting several requests at once (a process that
   * died with requests in flight, before anything marked it down), is no retry storm to damp.
   */
  #budgetAllows(backend: Backend, failure: Failure): boolean {
    if (failure.kind === "connect" || !isAvailable(backend)) return true;
    if (failure.kind === "reset" && this.#resetsInBurst(backend) > 1) return true;
    return this.#retryBudgetAllows();
  }

  /** Counts a reset from `backend`: how many it has given within RESET_BURST_MS of each other, this one included. */
  #resetsInBurst(backend: Backend): number {
    const now = performance.now();
    const last = this.#resetBursts.get(backend);
    const count = last && now - last.at < RESET_BURST_MS ? last.count + 1 : 1;
    this.#resetBursts.set(backend, { at: now, count });
    return count;
  }

  #retryBudgetAllows(): boolean {
    return retryBudgetAllows(this.#requestsInFlight, this.#retriesInFlight, this.options.retryBudgetPercent);
  }

  #hasRoom(backend: Backend): boolean {
    return this.options.maxInflight === 0 || backend.inflight < this.options.maxInflight;
  }

  /** Waits for a backend to have room, until the deadline; a Response (503 or client gone) when it cannot. */
  async #waitForRoom(trip: Trip, deadline: number): Promise<Response | null> {
    const { request } = trip;
    try {
      await this.#roomQueue.wait(request.signal, Math.max(0, deadline - Date.now()));
      return null;
    } catch (error) {
      if (request.signal.aborted) return this.#clientGone(trip);
      const why =
        error instanceof QueueFull ? "every backend is at its limit and the queue is full" : "waited too long for a backend with room";
      return this.#fail(trip, 503, why, this.#retryAfter());
    }
  }

  #movableOn(backend: Backend): Set<UpstreamCall> {
    let movable = this.#movable.get(backend);
    if (!movable) this.#movable.set(backend, (movable = new Set()));
    return movable;
  }

  #requestDone(backend: Backend): void {
    backend.inflight--;
    if (this.options.maxInflight > 0) this.#roomQueue.wakeOne();
  }

  async #attempt(backend: Backend, trip: Trip, headers: Fields, body: OutgoingBody): Promise<AttemptResult> {
    const { request } = trip;
    // A streamed answer ends after this attempt has returned; its end reaches finish() through this relay (the end
    // can come before respond() has set it, when the whole stream arrived in one read).
    let finish: ((bytes: number, failure?: Failure) => void) | null = null;
    let endedEarly: [number, Failure | undefined] | null = null;
    const declared = request.headers.get("content-length");
    const call = this.options.upstream.send(backend.url, {
      method: request.method,
      target: trip.context.path,
      headers,
      body: body.body,
      streamLength: declared === null ? undefined : Number(declared),
      timeoutMs: this.options.timeoutMs,
      signal: request.signal,
      onStreamEnd: (bytes, failed) => (finish ? finish(bytes, failed) : (endedEarly = [bytes, failed])),
    });
    const movable = body.replayable && isIdempotent(request.method) ? this.#movableOn(backend) : null;
    movable?.add(call);
    const sent = performance.now();
    backend.inflight++;
    const result = await call.result;
    movable?.delete(call);
    if (isFailure(result)) {
      this.#requestDone(backend);
      if (request.signal.aborted) return "client-gone";
      if (trip.bodyStalled) return "client-stalled";
      return result.kind === "cancelled" ? "client-gone" : result;
    }
    trip.upstreamMs = performance.now() - sent;
    const response = this.#respond(backend, trip, result, (end) => (finish = end));
    if (endedEarly) finish!(...(endedEarly as [number, Failure | undefined]));
    return response;
  }

  /**
   * Hands the backend's answer to the client; the in-flight count passes to the response: it ends at once for a
   * whole body, at the last byte (or the client leaving) for a streamed one, which `onEnd` is given to report.
   */
  #respond(backend: Backend, trip: Trip, answer: UpstreamAnswer, onEnd: (finish: (bytes: number, failure?: Failure) => void) => void): Response {
    const { headers, body } = answer;
    let typed = false;
    let idAt = -1;
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i]![0];
      if (name === "content-type") typed = true;
      else if (name === "x-request-id") idAt = i;
    }
    if (idAt === -1) headers.push(["x-request-id", trip.requestId]);
    else headers[idAt] = ["x-request-id", trip.requestId];
    const { sticky } = this.options;
    if (sticky && backend !== trip.pinned) headers.push(["set-cookie", sticky.cookieFor(backend)]);
    const init = { status: answer.status, statusText: answer.statusText, headers };
    const whole = body === null || body instanceof Uint8Array;
    const response = new Response(whole && body?.byteLength && !typed ? untypedBody(body) : body, init);
    const finish = once((bytes: number, backendFailure?: Failure) => {
      this.#requestDone(backend);
      // The status is gone to the client already; the client sees the body cut off (no last chunk). The backend
      // failed all the same, so it counts toward ejection, and the log says so (nginx: "upstream prematurely closed").
      if (backendFailure !== undefined && backendFailure.kind !== "cancelled") {
        this.options.pool.recordOutcome(backend, true);
        this.options.log.warn(
          `backend ${backend.name} broke off its answer to ${trip.request.method} ${trip.context.path} after ${bytes} bytes: ${backendFailure.reason}`,
        );
      }
      this.#logAccess(trip, answer.status, bytes);
    });
    if (this.options.debug) this.options.log.debug(`Response from server: HTTP/1.1 ${answer.status} ${answer.statusText}`);
    if (whole) finish(body?.byteLength ?? 0);
    else onEnd(finish);
    return response;
  }

  #fail(trip: Trip, status: number, detail: string, headers?: Record<string, string>): Response {
    const response = errorResponse(status, detail, { ...headers, "x-request-id": trip.requestId });
    this.#logAccess(trip, status, 0);
    return response;
  }

  #clientGone(trip: Trip): Response {
    this.#logAccess(trip, CLIENT_CLOSED, 0);
    return new Response(null, { status: 400 });
  }

  #retryAfter(): Record<string, string> {
    return { "retry-after": String(this.options.retryAfterSeconds) };
  }

  /** The end of a request, however it ended: one access line and its metrics. */
  #logAccess(trip: Trip, status: number, bytes: number): void {
    const totalMs = performance.now() - trip.started;
    const { metrics } = this.options;
    // A closed WebSocket tunnel (101) is a connection, counted by lb_websocket_*, not a request.
    if (status !== 101) {
      if (trip.target) metrics.of(trip.target.url).record(trip.request.method, status, totalMs / 1000, Date.now());
      else metrics.recordUnrouted(status);
    }
    this.options.accessLog?.write({
      client: trip.client.ip,
      method: trip.request.method,
      path: trip.context.path,
      status,
      backend: trip.target?.name ?? "-",
      requestId: trip.requestId,
      headers: trip.request.headers,
      attempts: trip.attempts,
      upstreamMs: trip.upstreamMs,
      totalMs,
      bytes,
    });
  }

  #logRequest(trip: Trip): void {
    const { log } = this.options;
    log.debug(`Received request from ${trip.client.ip}`);
    log.debug(`${trip.request.method} ${trip.context.path} HTTP/1.1`);
    for (const [name, value] of trip.request.headers) log.debug(`${name}: ${redact(name, value)}`);
  }
}

/** host[:port] or [ipv6][:port]; Bun joins repeated Host headers with ", ", which this refuses too. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]*)(?::\d*)?$/;

/** A request id worth keeping: what proxies and tracing systems generate (UUIDs, hex, base64url), not arbitrary text. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

export function requestIdOf(headers: Headers): string {
  const incoming = headers.get("x-request-id");
  return incoming && SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/** The path and query as received; the scheme and authority of the request URL are never used to route. */
export function pathOf(url: string): string {
  // Bun gives a bare path when the Host header is not a valid authority.
  if (url.startsWith("/")) return url;
  const slash = url.indexOf("/", url.indexOf("://") + 3);
  return slash === -1 ? "/" : url.slice(slash);
}

const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);

export function redact(name: string, value: string): string {
  return SECRET_HEADERS.has(name.toLowerCase()) ? "[redacted]" : value;
}

/** A function that runs only the first time it is called. */
function once<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let done = false;
  return (...args) => {
    if (done) return;
    done = true;
    fn(...args);
  };
}
