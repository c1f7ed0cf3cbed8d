/**
 * A WebSocket request's trip: the backend handshake first (candidates in the policy's order, like any request; a
 * handshake is safe to try elsewhere), then the client's upgrade. The tunnel is one attempt until it closes.
 */
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type Backend, isAvailable } from "../pool/backend.ts";
import type { Attempt } from "./attempt.ts";
import { type Trip, requestFields } from "./trip.ts";
import { Tunnel, openUpstream, tunnelRequestHeaders, webSocketUrl } from "./websocket.ts";
import { type ProxyVersion, encodeProxyHeader } from "../net/proxy-protocol.ts";
import { ProxyRelay } from "./proxy-relay.ts";

export interface TunnelDeps {
  metrics: Metrics;
  log: Logger;
  retries: number;
  timeoutMs: number;
  /** The pool's send-proxy: the backend connection starts with a PROXY header, written by a loopback relay. */
  sendProxy?: ProxyVersion | undefined;
  /** Starts an attempt on `backend` for this trip. */
  attempt(trip: Trip, backend: Backend): Attempt;
}

/** What became of it: upgraded (the client's side completes it), or why not, for lb's own answer. */
export type TunnelOutcome = { upgraded: true } | { upgraded: false; status: number; detail: string };

export async function openTunnel(trip: Trip, candidates: readonly Backend[], deps: TunnelDeps): Promise<TunnelOutcome> {
  const headers = tunnelRequestHeaders(new Headers(requestFields(trip)));
  const protocols = (trip.request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
  for (const backend of candidates) {
    if (trip.attempts > deps.retries) break;
    if (!isAvailable(backend)) continue;
    trip.attempts++;
    trip.target = backend;
    backend.stats.requests++;
    const sent = performance.now();
    const span = trip.trace?.attempt(backend.url, trip.upstreamPath, trip.attempts);
    if (span) trip.trace!.setHeaders(headers, span);
    const opened = await openBackend(backend.url, trip, headers, protocols, deps);
    if (typeof opened === "string") {
      span?.failed("handshake");
      span?.end(0);
      deps.log.warn(`backend ${backend.name} refused the WebSocket handshake for ${trip.path}: ${opened}`);
      continue;
    }
    const { upstream, relay } = opened;
    trip.upstreamMs = performance.now() - sent;
    const attempt = deps.attempt(trip, backend);
    attempt.span = span; // it lasts as long as the tunnel
    const metrics = deps.metrics.of(backend.url);
    const tunnel = new Tunnel(upstream, () => {
      relay?.close();
      metrics.tunnelsOpen--;
      attempt.responded(101, 0);
    });
    // Always set, even empty: Bun.serve would otherwise answer with the first subprotocol the client offered.
    const answer: Record<string, string> = { "x-request-id": trip.requestId, "sec-websocket-protocol": upstream.protocol };
    if (!trip.client.upgrade(tunnel, answer)) {
      upstream.close(1000, "client could not upgrade");
      attempt.failed();
      return { upgraded: false, status: 400, detail: "this request cannot be upgraded to a WebSocket" };
    }
    metrics.tunnels++;
    metrics.tunnelsOpen++;
    return { upgraded: true };
  }
  return { upgraded: false, status: 502, detail: "no backend accepted the WebSocket handshake" };
}

/** The backend's side of the tunnel, through a relay that writes the PROXY header first when the pool sends one. */
async function openBackend(origin: string, trip: Trip, headers: Headers, protocols: string[], deps: TunnelDeps): Promise<{ upstream: WebSocket; relay: ProxyRelay | null } | string> {
  const { sendProxy, timeoutMs } = deps;
  if (!sendProxy) {
    const upstream = await openUpstream(() => webSocketUrl(origin, trip.upstreamPath), headers, protocols, timeoutMs);
    return typeof upstream === "string" ? upstream : { upstream, relay: null };
  }
  const backend = new URL(origin);
  const header = encodeProxyHeader(sendProxy, trip.client.addresses());
  const relays: ProxyRelay[] = [];
  // One relay per handshake: each carries one connection (a handshake made again gets a new one). TLS, when the
  // backend is https://, runs end to end through the relay: the header goes before it, as nginx and HAProxy expect.
  const scheme = backend.protocol === "https:" ? "wss" : "ws";
  const hostname = backend.hostname.replace(/^\[|\]$/g, "");
  const relayUrl = () => {
    relays.at(-1)?.close();
    relays.push(new ProxyRelay(hostname, Number(backend.port || (scheme === "wss" ? 443 : 80)), header));
    return `${scheme}://${relays.at(-1)!.address}${trip.upstreamPath}`;
  };
  // The certificate is verified against the backend's name, not the relay's 127.0.0.1.
  let upstream: WebSocket | string;
  try {
    upstream = await openUpstream(relayUrl, headers, protocols, timeoutMs, scheme === "wss" ? hostname : undefined);
  } catch (error) {
    relays.at(-1)?.close();
    return `no relay for the PROXY header: ${(error as Error).message}`; // no port to listen on, say
  }
  const relay = relays.at(-1)!;
  if (typeof upstream !== "string") return { upstream, relay };
  relay.close();
  return upstream;
}
