/** One client request's trip through lb: what is known about it as it goes, for the decisions and the access log. */
import type { RequestContext } from "../balance/policy.ts";
import type { Cidr } from "../net/ip.ts";
import { clientAddress } from "../edge/client-address.ts";
import type { EdgePolicy } from "../edge/policy.ts";
import type { Logger } from "../log/log.ts";
import type { Backend } from "../pool/backend.ts";
import type { TripTrace } from "../tracing/spans.ts";
import type { PlaceholderValues } from "../edge/header-rules.ts";
import { type ClientInfo, type ScannedFields, scanFields, upstreamRequestFields } from "./headers.ts";
import type { Tunnel } from "./websocket.ts";
import type { ProxyAddresses } from "../net/proxy-protocol.ts";

/** The client side of one request, as the server edge sees it. */
export interface ClientConnection {
  /**
   * The connection's address: the TCP peer, or what a PROXY protocol header said. Only clientAddress() reads it;
   * everything else uses the trip's `source.ip`.
   */
  peer: string;
  /** The scheme the client used to reach lb. */
  proto: "http" | "https";
  /**
   * The client's TCP connection ("address:port"; null when unknown): a backend connection only ever carries the
   * requests of one client connection, so nothing a backend sends can reach another client.
   */
  connection: string | null;
  /**
   * The client connection's two ends: the client's address and port, and the address it reached (from the PROXY header
   * behind --accept-proxy; else the peer and lb's listening address); null when unknown. What send-proxy sends on.
   */
  addresses(): ProxyAddresses | null;
  /** Requests and WebSocket tunnels open on the listener, this one included (read only with --max-connections). */
  openRequests(): number;
  /**
   * The client may have cancelled the request while the listener held it for a turn of the event loop (HTTP/2 and
   * HTTP/3: the rapid-reset guard), so its signal is read; otherwise it is not (that costs Bun work).
   */
  readonly waited: boolean;
  /**
   * Told when the request is in lb's hands (its body read, or streaming under lb's own watch) and lb waits on a
   * backend; then when its response has ended (sent whole, its stream over or cut, or lb's own answer). The listener
   * runs the client's idle timer from these.
   */
  awaitingBackend(): void;
  responseEnded(): void;
  /** Completes a WebSocket upgrade with this tunnel (and response headers); false if the request cannot upgrade. */
  upgrade(tunnel: Tunnel, headers: Record<string, string>): boolean;
}

/** A trip is its own RequestContext (what policies see of it: the client's address, the path, the fields). */
export interface Trip extends RequestContext {
  request: Request;
  /** The client's request fields, read once (headers.ts scanFields). */
  fields: ScannedFields;
  /** The client's X-Request-Id when it is a sane one, else a new UUID; sent to the backend and back to the client. */
  requestId: string;
  client: ClientConnection;
  /** The real client (edge/client-address.ts): what limits, lists, hashing, logs and forwarded headers use. */
  source: ClientInfo;
  /** The route's (or pool's) edge policy; null when it has none. */
  policy: EdgePolicy | null;
  /** The path and query sent to the backend: the client's, or as a route or a hook rewrote it. */
  upstreamPath: string;
  /** The request fields the backend gets (before lb's own are added): the client's, or a hook's copy. */
  upstreamHeaders: Headers;
  /** A backend a hook chose: tried first when it is available. */
  preferred: Backend | undefined;
  /** The onResponse hook, when one is set: false when it failed (the client gets lb's 502 instead). */
  onResponse: ((response: Response) => boolean | Promise<boolean>) | undefined;
  /** The backend a sticky cookie named, if it is available. */
  pinned: Backend | undefined;
  started: number;
  attempts: number;
  /** The backend that answered, or was last tried. */
  target: Backend | null;
  /** Until the answer's head arrived, in ms. */
  upstreamMs: number;
  /** Set when the client stopped sending its streamed body for longer than the client timeout. */
  bodyStalled: boolean;
  /** Request body bytes taken from the client. */
  bytesIn: number;
  /** Its trace, when tracing is on (lb's server span, the traceparent it passes on). */
  trace: TripTrace | undefined;
}

/** `trusted`: --trusted-proxies (null when none). */
export function startTrip(request: Request, client: ClientConnection, trusted: readonly Cidr[] | null): Trip {
  const path = pathOf(request.url);
  const address = clientAddress(client.peer, request.headers, trusted);
  const fields = scanFields(request.headers);
  return {
    request,
    fields,
    requestId: requestIdOf(fields.requestId),
    client,
    // Field by field, not spread: one shape for every trip, and no property copying per request.
    source: { ip: address.ip, forwardedFor: address.forwardedFor, untrusted: address.untrusted, proto: client.proto },
    policy: null,
    clientIp: address.ip,
    path,
    headers: request.headers,
    upstreamPath: path,
    upstreamHeaders: request.headers,
    preferred: undefined,
    onResponse: undefined,
    pinned: undefined,
    started: performance.now(),
    attempts: 0,
    target: null,
    upstreamMs: 0,
    bodyStalled: false,
    bytesIn: 0,
    trace: undefined,
  };
}

/** The fields the backend gets: the client's as headers.ts passes them on, then the policy's request rules. */
export function requestFields(trip: Trip): Array<[string, string]> {
  const incoming = trip.upstreamHeaders === trip.request.headers ? trip.fields : scanFields(trip.upstreamHeaders);
  const fields = upstreamRequestFields(incoming, trip.source, trip.requestId);
  return trip.policy ? trip.policy.requestFields(fields, placeholderValues(trip)) : fields;
}

/** What {client_ip}, {request_id} and {host} stand for in this request's header rules. */
export function placeholderValues(trip: Trip): PlaceholderValues {
  return { clientIp: trip.source.ip, requestId: trip.requestId, host: trip.fields.host ?? "" };
}

/** A request id worth keeping: what proxies and tracing systems generate (UUIDs, hex, base64url), not arbitrary text. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:+/=-]{1,128}$/;

/** `incoming`: the client's X-Request-Id field, null when it sent none. */
export function requestIdOf(incoming: string | null): string {
  return incoming && SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/** The path and query as received; the scheme and authority of the request URL are never used to route. */
export function pathOf(url: string): string {
  // Bun gives a bare path when the Host header is not a valid authority.
  if (url.startsWith("/")) return url;
  const slash = url.indexOf("/", url.indexOf("://") + 3);
  return slash === -1 ? "/" : url.slice(slash);
}

/** --debug: the request as it came, secrets redacted. */
export function logRequest(log: Logger, trip: Trip): void {
  log.debug(`Received request from ${trip.source.ip}`);
  log.debug(`${trip.request.method} ${trip.path} HTTP/1.1`);
  for (const [name, value] of trip.fields.pairs) log.debug(`${name}: ${redact(name, value)}`);
}

const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);

export function redact(name: string, value: string): string {
  return SECRET_HEADERS.has(name.toLowerCase()) ? "[redacted]" : value;
}
