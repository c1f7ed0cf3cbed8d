/**
 * The sockets clients connect to: the proxy listener (with certificate rotation and a bounded drain), the HTTP → HTTPS
 * redirect, and the errors binding them can raise. What a request does once accepted is the forwarder's business.
 */
import type { Server } from "bun";
import { readFileSync } from "node:fs";
import { formatDuration } from "./config/duration.ts";
import { ConfigError } from "./config/load.ts";
import type { Config } from "./config/types.ts";
import { settlesWithin } from "./deadline.ts";
import type { Logger } from "./log.ts";
import { errorResponse } from "./proxy/responses.ts";
import { type ClientConnection, pathOf } from "./proxy/trip.ts";
import { type Tunnel, tunnelHandlers } from "./proxy/websocket.ts";

/** A listener could not bind; `listener` says which, `cause` has the system error (code EADDRINUSE...). */
export class ListenError extends Error {
  override name = "ListenError";
  readonly code: string | undefined;

  constructor(
    readonly listener: "proxy" | "admin" | "redirect",
    cause: unknown,
  ) {
    super(`${listener} listener: ${(cause as Error).message}`, { cause });
    this.code = (cause as { code?: string }).code;
  }
}

/** Runs `start`, naming the listener in the error if it cannot bind. */
export function listen<T>(listener: ListenError["listener"], start: () => T): T {
  try {
    return start();
  } catch (error) {
    throw new ListenError(listener, error);
  }
}

/** Binds the port exclusively for a moment: fails (EADDRINUSE) if anything holds it; returns the port (0 → a free one). */
export function claimPort(hostname: string, port: number): number {
  return listen("proxy", () => {
    const probe = Bun.listen({ hostname, port, exclusive: true, socket: { data() {} } });
    const claimed = probe.port;
    probe.stop(true);
    return claimed;
  });
}

export type TlsCertificates = Array<{ cert: string; key: string; serverName?: string }>;

/** The default certificate first, then one per --tls-sni name; undefined when lb serves plain HTTP. */
export function readCertificates(config: Config): TlsCertificates | undefined {
  if (!config.tlsCert) return undefined;
  return [
    { cert: readPem(config.tlsCert, "tls-cert"), key: readPem(config.tlsKey, "tls-key") },
    ...config.tlsSni.map(({ serverName, cert, key }) => ({
      serverName,
      cert: readPem(cert, `tls-sni ${serverName}`),
      key: readPem(key, `tls-sni ${serverName}`),
    })),
  ];
}

function readPem(path: string, setting: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${setting}: cannot read ${path} (${(error as NodeJS.ErrnoException).code}); check the path`);
  }
}

export type RequestHandler = (request: Request, client: ClientConnection) => Promise<Response | undefined>;

/** Whether the listener speaks HTTP/2: always with `--http2 on`, by ALPN when lb serves TLS with `auto`. */
export function servesHttp2(config: Pick<Config, "http2" | "tlsCert">): boolean {
  return config.http2 === "on" || (config.http2 === "auto" && Boolean(config.tlsCert));
}

/**
 * The client-facing listener. With TLS it is opened with SO_REUSEPORT, so a reload can open one with new certificates
 * beside it and retire the old one gracefully; an exclusive bind first keeps "port in use" an error. Worker processes
 * share the port their primary claimed (`shared`).
 */
export class ProxyListener {
  #server: Server<Tunnel>;
  #tls: TlsCertificates | undefined;
  /** Listeners replaced by a certificate reload, finishing their requests. */
  readonly #retiring = new Set<Server<Tunnel>>();

  constructor(
    config: Config,
    private readonly log: Logger,
    private readonly handle: RequestHandler,
    shared: boolean,
  ) {
    // Read before binding, so a missing file is a config error, not a listener one.
    const tls = readCertificates(config);
    const port = tls && !shared ? claimPort(config.host, config.port) : config.port;
    this.#server = listen("proxy", () => serveProxy({ ...config, port }, tls, shared || Boolean(tls), handle, log));
    this.#tls = tls;
  }

  get port(): number {
    return this.#server.port!;
  }

  /**
   * With TLS, re-reads the certificate files and moves new connections to a listener that serves them; none is
   * dropped. Throws ConfigError (before changing anything) if a file cannot be read.
   */
  renewCertificates(config: Config): void {
    if (!this.#tls) return;
    const fresh = readCertificates(config);
    const old = this.#server;
    this.#server = listen("proxy", () => serveProxy({ ...config, port: this.port }, fresh, true, this.handle, this.log));
    this.#tls = fresh;
    this.#retiring.add(old);
    void settlesWithin(old.stop(), config.drainTimeout).then(async () => {
      await old.stop(true);
      this.#retiring.delete(old);
    });
  }

  /** Client requests in progress and WebSocket tunnels open (Bun.serve does not count idle keep-alive connections). */
  openRequests(): number {
    return this.#server.pendingRequests + this.#server.pendingWebSockets;
  }

  /** Closes at once (a start that failed further on). */
  close(): void {
    void this.#server.stop(true);
  }

  /** Stops accepting; in-flight requests finish within the drain timeout, then the rest are closed. */
  async stop(drainTimeout: number): Promise<void> {
    const server = this.#server;
    const inflight = server.pendingRequests;
    if (inflight > 0) this.log.info(`draining ${inflight} in-flight request(s), at most ${formatDuration(drainTimeout)}`);
    const drained = await settlesWithin(server.stop(), drainTimeout);
    if (!drained) {
      this.log.warn(`drain timeout: closing ${server.pendingRequests} request(s) still in flight`);
      await server.stop(true);
    }
    for (const old of this.#retiring) await old.stop(true);
  }
}

function serveProxy(config: Config, tls: TlsCertificates | undefined, reusePort: boolean, handle: RequestHandler, log: Logger) {
  // Bun counts idle time in whole seconds.
  const clientIdleSeconds = Math.ceil(config.clientTimeout / 1000);
  return Bun.serve<Tunnel>({
    port: config.port,
    hostname: config.host,
    tls,
    // h2c (clear-text HTTP/2) only when asked for: HAProxy and nginx do not offer it by default either.
    http2: servesHttp2(config),
    http3: config.http3,
    development: false,
    idleTimeout: clientIdleSeconds,
    // Explicit: Bun's sockets are not exclusive by default.
    reusePort,
    // Bodies stream, so memory does not bound them; --max-body-size does (Bun answers 413 past it).
    maxRequestBodySize: config.maxBodySize || Number.MAX_SAFE_INTEGER,
    fetch(request, server) {
      const peer = server.requestIP(request);
      return handle(request, {
        ip: peer?.address ?? "-",
        connection: peer ? `${peer.address}:${peer.port}` : null,
        proto: tls ? "https" : "http",
        openRequests: server.pendingRequests + server.pendingWebSockets,
        holdOpen: (waiting) => server.timeout(request, waiting ? 0 : clientIdleSeconds),
        upgrade: (tunnel, headers) => server.upgrade(request, { data: tunnel, headers }),
      });
    },
    websocket: tunnelHandlers,
    error(error) {
      log.error(`internal error: ${error.message}`);
      return errorResponse(500, "internal error in lb");
    },
  });
}

/** Plain HTTP on another port, answering every request with a redirect to the same URL over HTTPS. */
export function serveHttpRedirect(config: Config, httpsPort: number): Server<undefined> {
  return listen("redirect", () =>
    Bun.serve({
      port: config.httpRedirectPort,
      hostname: config.host,
      development: false,
      reusePort: false,
      fetch(request) {
        const host = (request.headers.get("host") ?? config.host).replace(/:\d+$/, "");
        const port = httpsPort === 443 ? "" : `:${httpsPort}`;
        return new Response(null, { status: 308, headers: { location: `https://${host}${port}${pathOf(request.url)}` } });
      },
    }),
  );
}
