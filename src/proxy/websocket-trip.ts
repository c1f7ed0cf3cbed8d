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

export interface TunnelDeps {
  metrics: Metrics;
  log: Logger;
  retries: number;
  timeoutMs: number;
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
    const upstream = await openUpstream(webSocketUrl(backend.url, trip.upstreamPath), headers, protocols, deps.timeoutMs);
    if (typeof upstream === "string") {
      span?.failed("handshake");
      span?.end(0);
      deps.log.warn(`backend ${backend.name} refused the WebSocket handshake for ${trip.context.path}: ${upstream}`);
      continue;
    }
    trip.upstreamMs = performance.now() - sent;
    const attempt = deps.attempt(trip, backend);
    attempt.span = span; // it lasts as long as the tunnel
    const metrics = deps.metrics.of(backend.url);
    const tunnel = new Tunnel(upstream, () => {
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
