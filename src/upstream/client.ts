/**
 * The seam between lb's forwarding and the network: send one request to a backend, get its answer or a classified
 * failure. Everything about the transport (connection pools, writing requests, parsing answers, timeouts) is behind
 * it; the forwarder keeps the policy (which backend, whether to retry, what to tell the client). Tests of the
 * forwarder's policy can put a fake client here, as Go's ReverseProxy takes any RoundTripper.
 */
import type { Failure } from "./failure.ts";
import { isIdempotent } from "../http/h1/request-head.ts";
import type { ProxyAddresses, ProxyVersion } from "../net/proxy-protocol.ts";

export interface UpstreamRequest {
  method: string;
  /** The path and query, as the client sent them. */
  target: string;
  /** The fields to send, hop-by-hop ones already removed; Content-Length and Transfer-Encoding are the client's. */
  headers: Iterable<[string, string]>;
  /** Whole (it can be sent again), a stream (sent once), or none. */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  /** A stream's length when the client declared it; without one the body goes chunked. */
  streamLength?: number;
  /**
   * Whose request it is: the client connection's key. A backend connection carries requests for one client connection
   * only, so a backend that sends more than it was asked for (a second answer, a body after a 304) can only confuse
   * the client that asked; null (unknown) gets a connection of its own that is closed after the answer.
   */
  client: string | null;
  /** Whom the request is for, as the PROXY header of a new connection says (send-proxy); absent: lb's own (a check). */
  from?: { addresses(): ProxyAddresses | null };
  /** Longest wait, in ms, for the answer's head (and for a body read whole, the whole of it). */
  timeoutMs: number;
  /**
   * The client's request, for its signal: once that aborts (the client left), the request is called off with a
   * "cancelled" failure. It is polled with the deadlines rather than listened to: a listener per request costs more
   * than a check per tick. The signal is read only once a request has waited half a second (origin-pool.ts): reading
   * a Bun.serve request's signal costs about a sixth of a proxied request's CPU, and most answers come sooner.
   */
  readonly cancelledBy?: { readonly signal: AbortSignal };
  /** Told when a streamed answer body has ended (an object, not a callback: no closure per request). */
  streamWatcher?: StreamWatcher;
}

export interface StreamWatcher {
  /**
   * Called once a streamed answer body has ended: passed on to its end, broken off by the backend (with the failure),
   * or cancelled by the reader. Not called for an answer whose body comes whole.
   */
  streamEnded(bytes: number, failure?: Failure): void;
}

export interface UpstreamResponse {
  status: number;
  statusText: string;
  /** As the backend sent them, minus hop-by-hop and framing fields. */
  headers: [string, string][];
  /**
   * Whole when it had all arrived (up to a megabyte: a Content-Length answer of that size, or a chunked one already
   * here), so Bun answers with a Content-Length; otherwise a stream that begins with what has arrived.
   */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

/** One request on its way: its outcome, and a way to call it off before the answer has come. */
export interface UpstreamCall {
  readonly result: Promise<UpstreamResponse | Failure>;
  /** When the client took it (performance.now): where the backend's time to answer starts. */
  readonly sentAt: number;
  /** Gives up on the answer: the call settles with `why` (if it has not yet) and its connection is closed. */
  cancel(why: Failure): void;
}

export interface UpstreamTls {
  /** PEM of the CA that signs backend certificates; the system's CAs when absent. */
  ca?: string;
  rejectUnauthorized: boolean;
}

export interface UpstreamSettings {
  /** Longest wait for a TCP (and TLS) connection, in ms. */
  connectTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long, in ms. */
  idleTimeoutMs: number;
  /** A streamed answer that moves no byte for this long is cut, in ms (the backend silent, or the reader stalled). */
  readTimeoutMs: number;
  /**
   * The clients' idle timeout, in ms: a backend connection whose client has not come back for this long is closed,
   * because that client's own connection is gone (lb closed it) and no other client may have it.
   */
  clientIdleMs: number;
  /** How https:// backends are verified; undefined: the system's CAs. */
  tls: UpstreamTls | undefined;
  /** Each new connection starts with a PROXY header of this version, for the client it is opened for (send-proxy). */
  sendProxy?: ProxyVersion;
}

export interface UpstreamClient {
  /** Sends `request` to the backend at `origin` ("http://host:port" or "https://host:port"). */
  send(origin: string, request: UpstreamRequest): UpstreamCall;
  /** Applies to connections opened from now on (a reload). */
  configure(settings: UpstreamSettings): void;
  /** Closes the idle connections to a backend that left; busy ones close when their request ends. */
  forget(origin: string): void;
  /**
   * Calls off, with `why`, the requests to `origin` still waiting for their answer that may go to another backend
   * (mayGoElsewhere): for a backend that stopped answering. The others wait on, as the backend may yet answer them.
   */
  callOff(origin: string, why: Failure): void;
  /** Connections open now, busy with a request and idle in the pools (for tests and diagnostics; not yet exported). */
  connections(): { busy: number; idle: number };
  /** Closes every connection. */
  close(): void;
}

/** Whether a request not yet answered may be sent to a backend again: idempotent, its body (if any) held whole. */
export function mayGoElsewhere({ method, body }: UpstreamRequest): boolean {
  return !(body instanceof ReadableStream) && isIdempotent(method);
}

export function isFailure(result: UpstreamResponse | Failure): result is Failure {
  return "kind" in result;
}
