/**
 * The sockets clients connect to: the proxy listener (with certificate rotation and a bounded drain), the HTTP → HTTPS
 * redirect, and the errors binding them can raise; what concerns the client's connection: the rapid-reset turn and the
 * client's idle timer. What a request does once handed on is the data plane's business.
 */
import type { Server, SocketAddress } from "bun";
import { readFileSync } from "node:fs";
import { formatDuration } from "../config/duration.ts";
import { ConfigError } from "../config/load.ts";
import { type Config, servesTls } from "../config/types.ts";
import type { ChallengeAnswers } from "../acme/challenges.ts";
import { settlesWithin } from "../deadline.ts";
import type { Logger } from "../log/log.ts";
import { errorResponse } from "../proxy/responses.ts";
import { type ClientConnection, pathOf } from "../proxy/trip.ts";
import { type Tunnel, tunnelHandlers } from "../proxy/websocket.ts";
import type { Endpoint, ProxyAddresses } from "../net/proxy-protocol.ts";
import { AcceptProxyFront, type ProxyOutcome } from "./accept-proxy.ts";
import { keyProblem } from "./certificates.ts";

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
    readPair(config.tlsCert, config.tlsKey, "tls-cert", "tls-key"),
    ...config.tlsSni.map(({ serverName, cert, key }) => ({
      serverName,
      ...readPair(cert, key, `tls-sni ${serverName}`, `tls-sni ${serverName}`),
    })),
  ];
}

/** A certificate and its key, read and checked to go together (ConfigError naming both files if not). */
function readPair(certPath: string, keyPath: string, certSetting: string, keySetting: string) {
  const pair = { cert: readPem(certPath, certSetting), key: readPem(keyPath, keySetting) };
  const problem = keyProblem(pair.cert, pair.key);
  if (problem) throw new ConfigError(`${certSetting}: ${problem} (${certPath}, key ${keyPath})`);
  return pair;
}

function sameCertificates(a: TlsCertificates | undefined, b: TlsCertificates | undefined): boolean {
  if (!a || !b) return a === b;
  const same = (c: TlsCertificates[number], d: TlsCertificates[number]) =>
    c.serverName === d.serverName && c.cert === d.cert && c.key === d.key;
  return a.length === b.length && a.every((c, i) => same(c, b[i]!));
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
export function servesHttp2(config: Pick<Config, "http2" | "tlsCert" | "acme">): boolean {
  return config.http2 === "on" || (config.http2 === "auto" && servesTls(config));
}

/**
 * A server name no client asks for, with no certificate: as the first entry it is Bun's default, and a handshake that
 * falls to the default fails (an alert), as Caddy's does for a name it has no certificate for (measured: Bun takes the
 * first entry as the default for unknown names and no name, and fails the handshake when that one has none).
 */
const NO_CERTIFICATE = { serverName: "no-certificate.invalid" };

/**
 * What the listener serves: the files' certificates (the first is the default) and those --acme obtained, one per name.
 * With --acme alone, a name that has no certificate yet fails the handshake.
 */
export function servedCertificates(config: Config, files: TlsCertificates | undefined, acme: TlsCertificates): TlsCertificates | undefined {
  if (!servesTls(config)) return undefined;
  return [...(files ?? [NO_CERTIFICATE as TlsCertificates[number]]), ...acme];
}

/**
 * The client-facing listener. With TLS it is opened with SO_REUSEPORT, so a reload can open one with new certificates
 * beside it and retire the old one gracefully; an exclusive bind first keeps "port in use" an error. Worker processes
 * share the port their primary claimed (`shared`).
 */
export class ProxyListener {
  #server: Server<Tunnel>;
  /** With --accept-proxy: the port clients reach, relaying to #server on a loopback port. */
  readonly #front: AcceptProxyFront | null = null;
  #config: Config;
  #files: TlsCertificates | undefined;
  #acme: TlsCertificates;
  /** Listeners replaced by a certificate reload, finishing their requests. */
  readonly #retiring = new Set<Server<Tunnel>>();
  /** Whether the first hand-over checked that the kernel moves the old listener's queued connections. */
  #migrationChecked = false;

  constructor(
    config: Config,
    private readonly log: Logger,
    private readonly handle: RequestHandler,
    shared: boolean,
    /** Certificates --acme obtained already (a worker starts with its primary's). */
    acme: TlsCertificates = [],
    /** With --accept-proxy, each connection's outcome (counted). */
    onProxyOutcome: (outcome: ProxyOutcome) => void = () => {},
  ) {
    // Read before binding, so a missing file is a config error, not a listener one.
    const files = readCertificates(config);
    const tls = servedCertificates(config, files, acme);
    if (config.acceptProxy) {
      this.#server = listen("proxy", () => serveProxy(innerAddress(config), tls, false, handle, log, this.#relayed));
      this.#front = listen("proxy", () => new AcceptProxyFront(config.host, config.port, this.#server.port!, shared, {
        trusted: config.proxyTrusted,
        headerTimeoutMs: config.clientTimeout,
        outcome(outcome, peer, reason) {
          onProxyOutcome(outcome);
          if (reason) log.debug(`closed a connection from ${peer}: ${reason}`);
        },
      }));
    } else {
      const port = tls && !shared ? claimPort(config.host, config.port) : config.port;
      this.#server = listen("proxy", () => serveProxy({ ...config, port }, tls, shared || Boolean(tls), handle, log, null));
    }
    this.#config = config;
    this.#files = files;
    this.#acme = acme;
  }

  get port(): number {
    return this.#front?.port ?? this.#server.port!;
  }

  /** The client behind the relay connection from `address`:`port`, as its PROXY header said. */
  readonly #relayed: Relayed = (address, port) => this.#front!.addressesOf(address, port);

  /**
   * With TLS, re-reads the certificate files and, if any changed, moves new connections to a listener that serves
   * them (a hand-over is not free: #warnUnlessQueuesMigrate). Throws ConfigError if a file cannot be read or a key is
   * not its certificate's, ListenError if Bun refuses them nonetheless: either way before anything changed, so the
   * same files are refused again at the next reload.
   */
  renewCertificates(config: Config): void {
    if (!servesTls(config)) return;
    const files = readCertificates(config);
    if (sameCertificates(files, this.#files)) this.#config = config;
    else this.#reopen(config, files, this.#acme);
  }

  /** Serves the certificates --acme obtained from now on (new connections; none is dropped). */
  useAcmeCertificates(acme: TlsCertificates): void {
    this.#reopen(this.#config, this.#files, acme);
  }

  /**
   * Moves new connections to a listener with these settings and certificates, which are kept once it listens; the old
   * one finishes its requests.
   */
  #reopen(config: Config, files: TlsCertificates | undefined, acme: TlsCertificates): void {
    const tls = servedCertificates(config, files, acme);
    const old = this.#server;
    this.#server = this.#front
      ? listen("proxy", () => serveProxy(innerAddress(config), tls, false, this.handle, this.log, this.#relayed))
      : listen("proxy", () => serveProxy({ ...config, port: this.port }, tls, true, this.handle, this.log, null));
    this.#config = config;
    this.#files = files;
    this.#acme = acme;
    if (this.#front) this.#front.target = this.#server.port!;
    else this.#warnUnlessQueuesMigrate();
    this.#retiring.add(old);
    void settlesWithin(old.stop(), config.drainTimeout).then(async () => {
      await old.stop(true);
      this.#retiring.delete(old);
    });
  }

  /**
   * Connections the kernel has queued for the old listener (accepted, or mid-handshake, but not yet taken by lb) are
   * reset when it closes, unless Linux moves them to the new one (net.ipv4.tcp_migrate_req, Linux 5.14+; off by
   * default): 2–3 per hand-over at 550 new TLS connections a second (bench/cert-swap.sh). Said once.
   */
  #warnUnlessQueuesMigrate(): void {
    if (this.#migrationChecked) return;
    this.#migrationChecked = true;
    if (readSysctl("net/ipv4/tcp_migrate_req") !== "0") return;
    this.log.warn(
      "certificates: new connections moved to a new listener; the few the kernel had queued for the old one " +
        "are reset as it closes. sysctl net.ipv4.tcp_migrate_req=1 has Linux move them instead",
    );
  }

  /** Client requests in progress and WebSocket tunnels open (Bun.serve does not count idle keep-alive connections). */
  openRequests(): number {
    return this.#server.pendingRequests + this.#server.pendingWebSockets;
  }

  /** Closes at once (a start that failed further on). */
  close(): void {
    this.#front?.close();
    void this.#server.stop(true);
  }

  /** Stops accepting; in-flight requests finish within the drain timeout, then the rest are closed. */
  async stop(drainTimeout: number): Promise<void> {
    this.#front?.stop();
    const server = this.#server;
    const inflight = server.pendingRequests;
    if (inflight > 0) this.log.info(`draining ${inflight} in-flight request(s), at most ${formatDuration(drainTimeout)}`);
    const drained = await settlesWithin(server.stop(), drainTimeout);
    if (!drained) {
      this.log.warn(`drain timeout: closing ${server.pendingRequests} request(s) still in flight`);
      await server.stop(true);
    }
    for (const old of this.#retiring) await old.stop(true);
    this.#front?.close();
  }
}

/** A kernel setting's value (`name` under /proc/sys), or null where there is none to read (not Linux, too old). */
function readSysctl(name: string): string | null {
  try {
    return readFileSync(`/proc/sys/${name}`, "utf8").trim();
  } catch {
    return null;
  }
}

/** Where Bun.serve listens behind --accept-proxy's relay: a loopback port of its own. */
function innerAddress(config: Config): Config {
  return { ...config, host: "127.0.0.1", port: 0 };
}

/** With --accept-proxy: the client behind a relay connection to Bun.serve, by that connection's address and port. */
type Relayed = (address: string, port: number) => ProxyAddresses | undefined;

function serveProxy(config: Config, tls: TlsCertificates | undefined, reusePort: boolean, handle: RequestHandler, log: Logger, relayed: Relayed | null) {
  // Bun counts idle time in whole seconds.
  const clientIdleSeconds = Math.ceil(config.clientTimeout / 1000);
  const proto = tls ? "https" : "http";
  /**
   * Over HTTP/2 and HTTP/3 a client can open a request and cancel it in the same packet, thousands a second ("rapid
   * reset", CVE-2023-44487), and Bun calls fetch for each before it reads the cancel. Waiting one turn of the event
   * loop before handing a request on lets those cancels land first, so they never reach a backend (the handler logs
   * them as 499). Bun does not say which protocol a request came over, so when the listener offers HTTP/2 or HTTP/3
   * every request waits and is checked (HTTP/1.1 and upgrades too).
   */
  const multiplexed = servesHttp2(config) || config.http3;
  /** Where clients connected to, as far as lb knows (Bun does not say which local address a request came in on). */
  const listening = { address: config.host, port: config.port };
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
      const client = new ClientSide(request, server, proto, clientIdleSeconds, multiplexed, listening, relayed);
      // Behind the relay, a connection it did not open (a local process that found the loopback port) gets nothing.
      if (relayed && !client.relayed) return errorResponse(403, "connections come through the PROXY protocol port");
      // A request with others in flight waits for the turn, so all of them are forwarded together (see nextTurn); a
      // lone one goes at once, as waiting would only add a turn to its time.
      const waits = multiplexed || server.pendingRequests > 1;
      return waits ? handleNextTurn(handle, request, client) : handle(request, client);
    },
    websocket: tunnelHandlers,
    error(error) {
      log.error(`internal error: ${error.message}`);
      return errorResponse(500, "internal error in lb");
    },
  });
}

/** Hands the request on at the next turn (its own function: a closure in fetch would cost every request a scope). */
function handleNextTurn(handle: RequestHandler, request: Request, client: ClientConnection): Promise<Response | undefined> {
  return nextTurn().then(() => handle(request, client));
}

/** The turn the requests read since the last one wait for: one promise and one setImmediate for all of them. */
let pendingTurn: Promise<void> | null = null;

/**
 * Resolves on the event loop's next turn, after the I/O already read (a cancel in the same packet) is handled. The
 * requests read in one turn share it: a setImmediate and a promise of its own cost each request about 0.7 µs more
 * (measured at 100 a turn, as a flood of streams brings), where lb's turn should cost a flood next to nothing.
 * Under load, HTTP/1.1 requests wait for it too: the requests read in one turn are then forwarded together, which
 * costs lb less CPU per request than forwarding each as it is read (0.89x at 50 connections, pinned and interleaved).
 */
export function nextTurn(): Promise<void> {
  if (pendingTurn) return pendingTurn;
  const turn = Promise.withResolvers<void>();
  pendingTurn = turn.promise;
  setImmediate(() => {
    pendingTurn = null;
    turn.resolve();
  });
  return turn.promise;
}

/**
 * One request's client, as the listener sees it, and the client's idle timer (Bun's, --client-timeout). The timer runs
 * while lb waits on the client: its request head and body. It is off from the moment lb waits on a backend until the
 * response has ended: a slow backend, or a quiet stretch in a streaming response (server-sent events), is the
 * backend timeouts' business, not the client's.
 */
class ClientSide implements ClientConnection {
  /** The TCP peer, or the client a PROXY protocol header named: edge/client-address.ts's one input. */
  readonly peer: string;
  /** The TCP peer's (behind --accept-proxy, the relay connection's, as unique while the client's connection lasts). */
  readonly connection: string | null;
  readonly #peer: SocketAddress | null;
  /** The client as the PROXY header named it, behind --accept-proxy. */
  readonly relayed: ProxyAddresses | undefined;
  #idleTimerOff = false;

  constructor(
    private readonly request: Request,
    private readonly server: Server<Tunnel>,
    readonly proto: "http" | "https",
    private readonly idleSeconds: number,
    readonly waited: boolean,
    private readonly listening: Endpoint,
    relayed: Relayed | null,
  ) {
    const peer = server.requestIP(request);
    this.#peer = peer;
    this.relayed = relayed && peer ? relayed(peer.address, peer.port) : undefined;
    this.peer = this.relayed?.source.address ?? peer?.address ?? "-";
    this.connection = peer ? `${peer.address}:${peer.port}` : null;
  }

  openRequests(): number {
    return this.server.pendingRequests + this.server.pendingWebSockets;
  }

  addresses(): ProxyAddresses | null {
    if (this.relayed) return this.relayed;
    return this.#peer && { source: this.#peer, destination: this.listening };
  }

  awaitingBackend(): void {
    this.#idleTimerOff = true;
    this.server.timeout(this.request, 0);
  }

  responseEnded(): void {
    if (!this.#idleTimerOff) return; // never turned off: lb answered itself, or the request became a tunnel
    this.#idleTimerOff = false;
    this.server.timeout(this.request, this.idleSeconds);
  }

  upgrade(tunnel: Tunnel, headers: Record<string, string>): boolean {
    return this.server.upgrade(this.request, { data: tunnel, headers });
  }
}

/**
 * Plain HTTP on another port, answering every request with a redirect to the same URL over HTTPS, except the ACME
 * CA's HTTP-01 checks (`challenges`, with --acme).
 */
export function serveHttpRedirect(config: Config, httpsPort: number, challenges: ChallengeAnswers | null): Server<undefined> {
  return listen("redirect", () =>
    Bun.serve({
      port: config.httpRedirectPort,
      hostname: config.host,
      development: false,
      reusePort: false,
      fetch(request) {
        const challenge = challenges?.answer(pathOf(request.url));
        if (challenge) return challenge;
        const host = (request.headers.get("host") ?? config.host).replace(/:\d+$/, "");
        const port = httpsPort === 443 ? "" : `:${httpsPort}`;
        return new Response(null, { status: 308, headers: { location: `https://${host}${port}${pathOf(request.url)}` } });
      },
    }),
  );
}
