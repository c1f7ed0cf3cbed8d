/** The end of a trip, however it ended: one access line and the request metrics, written in this one place. */
import type { AccessLog } from "../log/access-log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Trip } from "./trip.ts";

/** Status logged when the client went away before it got an answer (nginx's convention). */
export const CLIENT_CLOSED = 499;

export class TripLog {
  constructor(
    private readonly metrics: Metrics,
    private readonly accessLog: AccessLog | null,
  ) {}

  /** A trip whose client left before it got an answer: logged as 499, and the answer nobody reads carries it. */
  clientGone(trip: Trip): Response {
    this.finish(trip, CLIENT_CLOSED, 0);
    return new Response(null, { status: CLIENT_CLOSED });
  }

  finish(trip: Trip, status: number, bytes: number): void {
    trip.client.responseEnded();
    const totalMs = performance.now() - trip.started;
    const endedAt = Date.now();
    const span = trip.trace?.end({ status, bytesIn: trip.bytesIn, bytesOut: bytes, attempts: trip.attempts, backend: trip.target?.name ?? "" });
    // A closed WebSocket tunnel (101) is a connection, counted by lb_websocket_*, not a request.
    if (status !== 101) {
      if (trip.target) {
        const counts = this.metrics.of(trip.target.url);
        counts.record(trip.request.method, status, totalMs / 1000, endedAt);
        counts.requestBytes += trip.bytesIn;
        counts.responseBytes += bytes;
      } else this.metrics.count("unrouted", String(status));
    }
    this.accessLog?.write({
      client: trip.source.ip,
      method: trip.request.method,
      path: trip.path,
      status,
      backend: trip.target?.name ?? "-",
      requestId: trip.requestId,
      host: trip.fields.host,
      userAgent: trip.fields.userAgent,
      referer: trip.fields.referer,
      endedAt,
      attempts: trip.attempts,
      upstreamMs: trip.upstreamMs,
      totalMs,
      bytes,
      bytesIn: trip.bytesIn,
      tls: trip.client.proto === "https",
      span,
    });
  }
}
