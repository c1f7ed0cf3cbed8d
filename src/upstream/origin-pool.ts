/**
 * The keep-alive connections to one backend. Each belongs to the client connection it was opened for and carries that
 * client's requests only (HAProxy's "http-reuse safe" treats a client's first request the same way; lb never shares):
 * a backend that sends more than it was asked for — a body after a 304, a second answer 50 ms after the first — can
 * then confuse only the client that asked, never hand one user's answer to another. A client's idle connections are
 * reused most recently used first; one whose client has not come back within the clients' idle timeout is closed (that
 * client's connection is gone). Clients that close after each request without saying so leave theirs behind: one
 * that has carried a single request is closed after ONE_REQUEST_IDLE_MS idle (a keep-alive client's is reused long
 * before), and past IDLE_LIMIT idle connections the oldest goes first. There is no cap on busy connections: a request
 * that finds none of its client's idle opens one (--max-inflight is the way to bound a backend).
 */
import { isIP } from "node:net";
import { encodeProxyHeader } from "../net/proxy-protocol.ts";
import { Connection, type ConnectionOwner } from "./connection.ts";
import { SOCKET_HANDLERS, proxyHeaderFirst } from "./socket-handlers.ts";
import type { Exchange } from "./exchange.ts";
import { IdleList } from "./idle-list.ts";
import { SwapSet } from "./swap-set.ts";
import { type ProtocolErrorKind, failure } from "./failure.ts";
import type { UpstreamSettings } from "./client.ts";

export interface PoolHooks {
  /** A request resent on a fresh connection after a pooled one closed unanswered. */
  onResend(origin: string): void;
  /** The backend broke HTTP/1.1 on a connection, which was closed. */
  onProtocolError(origin: string, kind: ProtocolErrorKind, detail: string): void;
}

/** Most idle connections kept per backend. */
export const IDLE_LIMIT = 1024;
/**
 * How long a connection that has carried one request only is kept idle: its client most likely closed after that
 * request (clients that do say so, with Connection: close, have theirs closed at once).
 */
export const ONE_REQUEST_IDLE_MS = 1000;
/**
 * A backend's own idle timeout (Keep-Alive: timeout=N) is cut by this much, so that lb lets go first and never sends a
 * request into the backend's close.
 */
const BACKEND_IDLE_MARGIN_MS = 1000;

export class OriginPool implements ConnectionOwner {
  readonly authority: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #https: boolean;
  /** Idle connections, least recently released first: IDLE_LIMIT trims the start. */
  readonly #idle = new IdleList<Connection>();
  /**
   * The same idle connections by the client connection they belong to, most recently released last. A client's entry
   * stays while it has none idle (its one connection busy with its next request): dropping and making it anew for
   * every request cost more than the request's own work; entries left empty go at the idle sweep (closeExpired).
   */
  readonly #idleOf = new Map<string, Connection[]>();
  /** Connections open or opening, busy or idle. */
  open = 0;
  /** Connections taken from the idle ones at least once: they carry more than one request. */
  readonly #takenAgain = new WeakSet<Connection>();
  /** The backend left the pool: connections close as they become idle. */
  #forgotten = false;
  /** Connections passing an answer on as a stream now, watched for silence. */
  readonly #streaming = new SwapSet<Connection>();

  constructor(
    readonly origin: string,
    private settings: () => UpstreamSettings,
    private readonly hooks: PoolHooks,
  ) {
    const url = new URL(origin);
    this.#https = url.protocol === "https:";
    this.#hostname = url.hostname.replace(/^\[|\]$/g, "");
    this.#port = Number(url.port || (this.#https ? 443 : 80));
    this.authority = url.host;
  }

  get idle(): number {
    return this.#idle.size;
  }

  /** Answers passed on as streams now. */
  get streams(): number {
    return this.#streaming.size;
  }

  streamStarted(connection: Connection): void {
    this.#streaming.add(connection);
  }

  streamEnded(connection: Connection): void {
    this.#streaming.delete(connection);
  }

  /** Sends on the client's most recently used idle connection (one past its idle limit is closed instead), or on a new one. */
  send(exchange: Exchange): void {
    const { client } = exchange.request;
    const mine = client === null ? undefined : this.#idleOf.get(client);
    if (mine) {
      const limit = this.#idleLimitMs();
      const now = exchange.sentAt;
      for (let idle = mine.pop(); idle; idle = mine.pop()) {
        const since = idle.idleSince;
        this.#idle.remove(idle);
        if (now - since < this.#idleLimitOf(idle, limit)) {
          this.#takenAgain.add(idle);
          return idle.start(exchange);
        }
        idle.destroy();
      }
    }
    this.#connect(exchange);
  }

  #connect(exchange: Exchange): void {
    const { connectTimeoutMs, tls, sendProxy } = this.settings();
    const { request } = exchange;
    // The connection carries this client connection's requests only, so one header, written first, is true of them all.
    const proxyHeader = sendProxy ? encodeProxyHeader(sendProxy, request.from?.addresses() ?? null) : null;
    const connection: Connection = new Connection(this, request.client, this.#https ? (tls?.rejectUnauthorized ?? true) : null, (failed) => {
      if (failed) exchange.resolve(failed);
      else if (exchange.settled) this.release(connection);
      else connection.start(exchange);
    });
    this.open++;
    exchange.connecting(connection, performance.now() + connectTimeoutMs);
    const tlsOptions = this.#https ? { serverName: isIP(this.#hostname) ? undefined : this.#hostname, ...tls } : undefined;
    Bun.connect<Connection>({
      hostname: this.#hostname,
      port: this.#port,
      data: connection,
      // The PROXY header goes before TLS: the connection opens in clear, writes it, then starts TLS.
      socket: proxyHeader ? proxyHeaderFirst(proxyHeader, tlsOptions) : SOCKET_HANDLERS,
      tls: proxyHeader ? undefined : tlsOptions,
    }).catch((error: unknown) => connection.onConnectError(error));
  }

  release(connection: Connection): void {
    const { client } = connection;
    if (this.#forgotten || client === null || this.#idleLimitOf(connection, this.#idleLimitMs()) <= 0) {
      return connection.destroy();
    }
    this.#idle.add(connection, performance.now());
    const mine = this.#idleOf.get(client);
    if (mine) mine.push(connection);
    else this.#idleOf.set(client, [connection]);
    if (this.#idle.size > IDLE_LIMIT) this.#idle.oldest!.destroy();
  }

  closed(connection: Connection): void {
    this.open--;
    if (!this.#idle.remove(connection)) return;
    const mine = this.#idleOf.get(connection.client!)!;
    mine.splice(mine.indexOf(connection), 1);
  }

  resend(exchange: Exchange): void {
    this.hooks.onResend(this.origin);
    this.#connect(exchange);
  }

  protocolError(kind: ProtocolErrorKind, detail: string): void {
    this.hooks.onProtocolError(this.origin, kind, detail);
  }

  /**
   * Closes the connections idle for longer than the idle limit, or than the backend said it keeps them (less a
   * margin, so lb lets go first and never sends a request into the backend's close); cuts streams stalled for
   * `readTimeoutMs`.
   */
  closeExpired(now: number): void {
    const limit = this.#idleLimitMs();
    for (const connection of this.#idle.items()) {
      if (now - connection.idleSince >= this.#idleLimitOf(connection, limit)) connection.destroy();
    }
    for (const [client, mine] of this.#idleOf) if (mine.length === 0) this.#idleOf.delete(client);
    const { readTimeoutMs } = this.settings();
    for (const connection of this.#streaming.members()) connection.cutIfStalled(now, readTimeoutMs);
  }

  /** The backend left: idle connections close now, busy ones once their exchange is over. */
  forget(): void {
    this.#forgotten = true;
    for (const connection of this.#idle.items()) connection.destroy();
  }

  /** How long `connection` may stay idle: `limit`, less when the backend said so or when it has carried one request only. */
  #idleLimitOf(connection: Connection, limit: number): number {
    const byBackend = connection.backendIdleMs - BACKEND_IDLE_MARGIN_MS;
    return Math.min(limit, byBackend, this.#takenAgain.has(connection) ? limit : ONE_REQUEST_IDLE_MS);
  }

  /** How long a connection may wait for its client: --upstream-idle-timeout, and never past the clients' own. */
  #idleLimitMs(): number {
    const { idleTimeoutMs, clientIdleMs } = this.settings();
    return Math.min(idleTimeoutMs, clientIdleMs);
  }
}

const CLIENT_LEFT = failure("cancelled", "the client went away");
/**
 * Whether the client left is looked at once sweeps have found the exchange waiting this long, in ms (see
 * UpstreamRequest.cancelledBy): reading the signal costs a sixth of a request's CPU, so only slow answers pay it. Under a
 * load that keeps answers over a few sweeps (c=1000), a shorter wait made every request pay it.
 */
const CLIENT_CHECK_AFTER_MS = 500;

/** Ends an exchange whose client left, or that has run past its deadline: no connection in time, or no answer in time. */
export function expire(exchange: Exchange, now: number): void {
  if (exchange.waitedSweeps(now) >= CLIENT_CHECK_AFTER_MS && exchange.request.cancelledBy?.signal.aborted) {
    exchange.abandon(CLIENT_LEFT);
  } else if (exchange.connectTimedOut(now)) {
    exchange.abandon(failure("connect", "connect timed out"));
  } else if (now >= exchange.deadline) {
    exchange.abandon(failure("timeout", "timed out"));
  }
}
