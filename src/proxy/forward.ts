/**
 * One request's trip, top to bottom: pick candidates, wait for an upstream slot, send to a backend, retry the next
 * candidate when that is safe, and stream the answer back. Every ending is logged once in the access log.
 */
import type { Policy } from "../balance/policy.ts";
import { formatDuration } from "../config/duration.ts";
import type { AccessLog, Logger } from "../log.ts";
import { type Backend, isAvailable } from "../pool/backend.ts";
import type { Pool } from "../pool/pool.ts";
import { type Failure, classifyFailure } from "../upstream-error.ts";
import { type OutgoingBody, prepareBody, watchBody } from "./body.ts";
import { type ClientInfo, downstreamResponseHeaders, upstreamRequestHeaders } from "./headers.ts";
import type { Limiter } from "./limiter.ts";
import { errorResponse } from "./responses.ts";
import { mayRetry } from "./retry.ts";

export interface ForwarderOptions {
  pool: Pool;
  policy: Policy;
  limiter: Limiter;
  /** Longest wait for a backend's response headers (and for an upstream slot), in ms. */
  timeoutMs: number;
  /** Further backends to try after a failed attempt. */
  retries: number;
  /** Sent with 503s: when a backend might be back (one health interval). */
  retryAfterSeconds: number;
  accessLog: AccessLog | null;
  log: Logger;
  debug: boolean;
}

/** The client side of one request, as the server edge sees it. */
export interface ClientConnection extends ClientInfo {
  /** Suspends (true) or restores (false) the client connection's idle timeout while lb waits on a backend. */
  holdOpen(waiting: boolean): void;
}

/** Status logged when the client went away before it got an answer (nginx's convention). */
const CLIENT_CLOSED = 499;
const TIMED_OUT = new DOMException("backend did not answer in time", "TimeoutError");

/** What the access log needs to know about one request, filled in as the trip goes. */
interface Trip {
  request: Request;
  client: ClientConnection;
  path: string;
  started: number;
  attempts: number;
  backend: string;
  upstreamMs: number;
  /** Gives back the upstream slot; set while one is held. */
  release: (() => void) | null;
}

type AttemptResult = Response | Failure | "client-gone";

export class Forwarder {
  constructor(private readonly options: ForwarderOptions) {}

  async handle(request: Request, client: ClientConnection): Promise<Response> {
    const trip: Trip = {
      request,
      client,
      path: pathOf(request.url),
      started: performance.now(),
      attempts: 0,
      backend: "-",
      upstreamMs: 0,
      release: null,
    };
    if (this.options.debug) this.#logRequest(trip);
    const available = this.options.pool.available();
    if (available.length === 0) return this.#fail(trip, 503, "no healthy backend", this.#retryAfter());
    // Taken before any await, so concurrent requests each get their own turn.
    const candidates = this.options.policy.candidates(available);
    client.holdOpen(true);
    try {
      return await this.#forward(trip, candidates);
    } finally {
      client.holdOpen(false);
      trip.release?.();
    }
  }

  async #forward(trip: Trip, candidates: Iterable<Backend>): Promise<Response> {
    const { request } = trip;
    // The body is read (when small) before a slot is taken, so a slow uploader does not hold one.
    let body: OutgoingBody;
    try {
      body = await prepareBody(request);
    } catch {
      return this.#clientGone(trip);
    }
    const { limiter } = this.options;
    if (!limiter.tryAcquire()) {
      try {
        await limiter.acquire(AbortSignal.any([request.signal, AbortSignal.timeout(this.options.timeoutMs)]));
      } catch {
        if (request.signal.aborted) return this.#clientGone(trip);
        return this.#fail(trip, 503, "too many requests waiting for a backend", this.#retryAfter());
      }
    }
    trip.release = once(() => limiter.release());
    const headers = upstreamRequestHeaders(request.headers, trip.client);
    let lastFailure: Failure | undefined;
    for (const backend of candidates) {
      if (trip.attempts > this.options.retries) break;
      if (!isAvailable(backend)) continue; // marked down by another request since this one started
      trip.attempts++;
      trip.backend = backend.name;
      const result = await this.#attempt(backend, trip, headers, body);
      if (result instanceof Response) return result;
      if (result === "client-gone") return this.#clientGone(trip);
      lastFailure = result;
      if (result.kind === "timeout") {
        return this.#fail(trip, 504, `backend did not answer within ${formatDuration(this.options.timeoutMs)}`);
      }
      if (result.kind === "connect" || result.kind === "reset") {
        this.options.pool.recordConnectFailure(backend, `${result.reason} (seen forwarding a request)`);
      }
      if (!mayRetry(result.kind, request.method, body.replayable)) break;
    }
    if (!lastFailure) return this.#fail(trip, 503, "no healthy backend", this.#retryAfter());
    return this.#fail(trip, 502, `backend failed (${lastFailure.reason})`);
  }

  async #attempt(backend: Backend, trip: Trip, headers: Headers, body: OutgoingBody): Promise<AttemptResult> {
    const { request } = trip;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(TIMED_OUT), this.options.timeoutMs);
    const sent = performance.now();
    backend.inflight++;
    try {
      const upstream = await fetch(backend.url + trip.path, {
        method: request.method,
        headers,
        body: body.body,
        redirect: "manual",
        decompress: false,
        signal: AbortSignal.any([request.signal, deadline.signal]),
      });
      trip.upstreamMs = performance.now() - sent;
      if (!fitsInBuffer(upstream)) return this.#respond(backend, trip, upstream, upstream.body);
      // Read whole, still under the deadline: nothing has reached the client yet, so a failure here can be retried.
      return this.#respond(backend, trip, upstream, await upstream.bytes());
    } catch (error) {
      backend.inflight--;
      if (request.signal.aborted) return "client-gone";
      return error === TIMED_OUT ? { kind: "timeout", reason: "timed out" } : classifyFailure(error);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Hands the backend's answer to the client. A buffered body is done at once; a streamed one frees the upstream
   * slot and the in-flight count when its last byte is sent (or the client leaves).
   */
  #respond(backend: Backend, trip: Trip, upstream: Response, body: Uint8Array | ReadableStream<Uint8Array> | null): Response {
    const release = trip.release;
    trip.release = null; // now owned by the body
    const finish = (bytes: number) => {
      backend.inflight--;
      release?.();
      this.#logAccess(trip, upstream.status, bytes);
    };
    if (this.options.debug) this.options.log.debug(`Response from server: HTTP/1.1 ${upstream.status} ${upstream.statusText}`);
    const init = { status: upstream.status, statusText: upstream.statusText, headers: downstreamResponseHeaders(upstream.headers) };
    if (body instanceof ReadableStream) return new Response(watchBody(body, finish), init);
    finish(body?.byteLength ?? 0);
    return new Response(body, init);
  }

  #fail(trip: Trip, status: number, detail: string, headers?: Record<string, string>): Response {
    const response = errorResponse(status, detail, headers);
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

  #logAccess(trip: Trip, status: number, bytes: number): void {
    this.options.accessLog?.write({
      client: trip.client.ip,
      method: trip.request.method,
      path: trip.path,
      status,
      backend: trip.backend,
      attempts: trip.attempts,
      upstreamMs: trip.upstreamMs,
      totalMs: performance.now() - trip.started,
      bytes,
    });
  }

  #logRequest(trip: Trip): void {
    const { log } = this.options;
    log.debug(`Received request from ${trip.client.ip}`);
    log.debug(`${trip.request.method} ${trip.path} HTTP/1.1`);
    for (const [name, value] of trip.request.headers) log.debug(`${name}: ${redact(name, value)}`);
  }
}

/**
 * Responses up to this size that declare a Content-Length are read whole before they are passed on: Bun.serve sends
 * a streamed body chunked and drops its Content-Length (oven-sh/bun#10507), and clients that show progress or
 * check lengths need it. At most one such body per upstream slot is held, so this bounds memory at 64 MiB.
 */
export const RESPONSE_BUFFER_LIMIT_BYTES = 1024 * 1024;

function fitsInBuffer(upstream: Response): boolean {
  const declared = upstream.headers.get("content-length");
  return upstream.body !== null && declared !== null && Number(declared) <= RESPONSE_BUFFER_LIMIT_BYTES;
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

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
