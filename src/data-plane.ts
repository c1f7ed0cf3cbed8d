/**
 * What carries requests in a process that serves traffic: the upstream client (connections to backends) and the
 * forwarder (one request's trip) behind the proxy listener. In the single process, or in each worker with --workers.
 */
import type { AccessLog } from "./access-log.ts";
import type { Config } from "./config/settings.ts";
import { forwarderTuning, upstreamSettings } from "./configure.ts";
import type { RequestHandler } from "./listeners.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { Pool, PoolEvent } from "./pool/pool.ts";
import { Forwarder } from "./proxy/forward.ts";
import type { UpstreamTls } from "./upstream/client.ts";
import { HttpClient } from "./upstream/http-client.ts";

export class DataPlane {
  readonly #upstream: HttpClient;
  readonly #forwarder: Forwarder;
  /** Requests are held until open(): the first health round is done, so the first one already avoids dead backends. */
  readonly #opened = Promise.withResolvers<void>();
  #open = false;

  constructor(
    pool: Pool,
    config: Config,
    tlsToBackends: UpstreamTls | undefined,
    private readonly metrics: Metrics,
    accessLog: AccessLog | null,
    log: Logger,
  ) {
    this.#upstream = new HttpClient(upstreamSettings(config, tlsToBackends), {
      onResend: (url) => {
        metrics.of(url).resends++;
        log.debug(`resent a request to ${url} on a fresh connection: the reused one closed before answering`);
      },
    });
    this.#forwarder = new Forwarder({ pool, upstream: this.#upstream, accessLog, metrics, log, ...forwarderTuning(config) });
  }

  readonly handle: RequestHandler = (request, client) =>
    this.#open ? this.#forwarder.handle(request, client) : this.#opened.promise.then(() => this.#forwarder.handle(request, client));

  /** Lets requests through (those held so far go first). */
  open(): void {
    this.#open = true;
    this.#opened.resolve();
  }

  /** Requests waiting for a backend with room. */
  get queued(): number {
    return this.#forwarder.queued;
  }

  /** What a pool change means for requests: stuck ones move, waiting ones look again, a removed backend is forgotten. */
  onPoolEvent(event: PoolEvent): void {
    if (event.type === "removed") {
      this.#upstream.forget(event.backend.url);
      this.metrics.backends.delete(event.backend.url);
    }
    // Requests stuck on a backend whose checks get no answer move elsewhere now, not at --timeout.
    if (event.type === "health" && event.to.status === "unhealthy" && event.to.unanswered) this.#forwarder.backendUnresponsive(event.backend);
    this.#forwarder.wakeWaitingRequests();
  }

  /** New settings apply to requests (and connections) that start from now on. */
  reconfigure(next: Config, tlsToBackends: UpstreamTls | undefined): void {
    this.#upstream.configure(upstreamSettings(next, tlsToBackends));
    this.#forwarder.reconfigure(forwarderTuning(next));
  }

  /** Closes the connections to backends (after the listener drained). */
  close(): void {
    this.#upstream.close();
  }
}
