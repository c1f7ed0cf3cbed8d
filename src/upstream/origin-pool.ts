/**
 * The keep-alive connections to one backend. Each belongs to the client connection it was opened for and carries that
 * client's requests only (HAProxy's "http-reuse safe" treats a client's first request the same way; lb never shares):
 * a backend that sends more than it was asked for — a body after a 304, a second answer 50 ms after the first — can
 * then confuse only the client that asked, never hand one user's answer to another. A client's idle connections are
 * reused most recently used first; one whose client has not come back within the clients' idle timeout is closed (that
 * client's connection is gone). Clients that close after each request leave theirs behind, so the idle ones are kept
 * to as many as were busy at once lately (at least IDLE_FLOOR, at most IDLE_LIMIT): the oldest goes first, the least
 * likely to be wanted again. There is no cap on busy connections: a request that finds none of its client's idle opens
 * one (--max-inflight is the way to bound a backend).
 */
import { isIP } from "node:net";
import { Connection, type ConnectionOwner, type Exchange, SOCKET_HANDLERS } from "./connection.ts";
import { type ProtocolErrorKind, failure } from "./failure.ts";
import type { UpstreamSettings } from "./client.ts";

export interface PoolHooks {
  /** A request resent on a fresh connection after a pooled one closed unanswered. */
  onResend(origin: string): void;
  /** The backend broke HTTP/1.1 on a connection, which was closed. */
  onProtocolError(origin: string, kind: ProtocolErrorKind, detail: string): void;
}

/** Most idle connections kept per backend, however many were busy. */
export const IDLE_LIMIT = 1024;
/** Idle connections always allowed per backend, however few were busy. */
export const IDLE_FLOOR = 8;
/** How many idle sweeps (a second each) the most connections busy at once is remembered for. */
const BUSY_MEMORY_SWEEPS = 10;

export class OriginPool implements ConnectionOwner {
  readonly authority: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #https: boolean;
  /** Idle connections, least recently released first: the idle timeouts and IDLE_LIMIT trim from the start. */
  readonly #idle = new Set<Connection>();
  /** The same idle connections by the client connection they belong to, most recently released last. */
  readonly #idleOf = new Map<string, Connection[]>();
  /** Connections open or opening, busy or idle. */
  open = 0;
  /** The most connections busy at once in each of the last idle sweeps, newest last. */
  readonly #busyPeaks: number[] = [0];
  /** The backend left the pool: connections close as they become idle. */
  #forgotten = false;
  readonly streaming = new Set<Connection>();

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

  /** Sends on the client's most recently used idle connection (one past its idle limit is closed instead), or on a new one. */
  send(exchange: Exchange): void {
    const { client } = exchange.request;
    const mine = client === null ? undefined : this.#idleOf.get(client);
    if (mine) {
      const limit = this.#idleLimitMs();
      const now = performance.now();
      for (let idle = mine.pop(); idle; idle = mine.pop()) {
        this.#idle.delete(idle);
        if (mine.length === 0) this.#idleOf.delete(client!);
        if (now - idle.idleSince < Math.min(limit, idle.backendLimitMs)) {
          this.#noteBusy();
          return idle.start(exchange);
        }
        idle.destroy();
      }
    }
    this.#connect(exchange);
  }

  #noteBusy(): void {
    const busy = this.open - this.#idle.size;
    if (busy > this.#busyPeaks.at(-1)!) this.#busyPeaks[this.#busyPeaks.length - 1] = busy;
  }

  /** How many idle connections may be kept: as many as were busy at once lately, within the floor and the limit. */
  get #idleAllowed(): number {
    return Math.min(IDLE_LIMIT, Math.max(IDLE_FLOOR, ...this.#busyPeaks));
  }

  #connect(exchange: Exchange): void {
    const { connectTimeoutMs, tls } = this.settings();
    const connection = new Connection(this, exchange.request.client, this.#https ? (tls?.rejectUnauthorized ?? true) : null);
    this.open++;
    this.#noteBusy();
    exchange.connection = connection;
    exchange.connectDeadline = performance.now() + connectTimeoutMs;
    connection.onReady = (failed) => {
      exchange.connectDeadline = 0;
      if (failed) exchange.resolve(failed);
      else if (exchange.settled) this.release(connection);
      else connection.start(exchange);
    };
    Bun.connect<Connection>({
      hostname: this.#hostname,
      port: this.#port,
      data: connection,
      socket: SOCKET_HANDLERS,
      tls: this.#https ? { serverName: isIP(this.#hostname) ? undefined : this.#hostname, ...tls } : undefined,
    }).catch((error: unknown) => connection.onConnectError(error));
  }

  release(connection: Connection): void {
    const { client } = connection;
    if (this.#forgotten || client === null || Math.min(this.#idleLimitMs(), connection.backendLimitMs) <= 0) {
      return connection.destroy();
    }
    connection.idleSince = performance.now();
    this.#idle.add(connection);
    const mine = this.#idleOf.get(client);
    if (mine) mine.push(connection);
    else this.#idleOf.set(client, [connection]);
    this.#trimIdle();
  }

  /** Closes the oldest idle connections past what may be kept. */
  #trimIdle(): void {
    for (let excess = this.#idle.size - this.#idleAllowed; excess > 0; excess--) this.#idle.values().next().value!.destroy();
  }

  closed(connection: Connection): void {
    this.open--;
    if (!this.#idle.delete(connection)) return;
    const mine = this.#idleOf.get(connection.client!)!;
    mine.splice(mine.indexOf(connection), 1);
    if (mine.length === 0) this.#idleOf.delete(connection.client!);
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
    this.#busyPeaks.push(this.open - this.#idle.size);
    if (this.#busyPeaks.length > BUSY_MEMORY_SWEEPS) this.#busyPeaks.shift();
    const limit = this.#idleLimitMs();
    const expired = [...this.#idle].filter((connection) => now - connection.idleSince >= Math.min(limit, connection.backendLimitMs));
    for (const connection of expired) connection.destroy();
    this.#trimIdle();
    const { readTimeoutMs } = this.settings();
    for (const connection of [...this.streaming]) connection.cutIfStalled(now, readTimeoutMs);
  }

  /** The backend left: idle connections close now, busy ones once their exchange is over. */
  forget(): void {
    this.#forgotten = true;
    for (const connection of [...this.#idle]) connection.destroy();
  }

  /** How long a connection may wait for its client: --upstream-idle-timeout, and never past the clients' own. */
  #idleLimitMs(): number {
    const { idleTimeoutMs, clientIdleMs } = this.settings();
    return Math.min(idleTimeoutMs, clientIdleMs);
  }
}

const CLIENT_LEFT = failure("cancelled", "the client went away");

/** Ends an exchange whose client left, or that has run past its deadline: no connection in time, or no answer in time. */
export function expire(exchange: Exchange, now: number): void {
  if (exchange.request.signal?.aborted) {
    exchange.abandon(CLIENT_LEFT);
  } else if (exchange.connectDeadline > 0 && now >= exchange.connectDeadline) {
    exchange.abandon(failure("connect", "connect timed out"));
  } else if (now >= exchange.deadline) {
    exchange.abandon(failure("timeout", "timed out"));
  }
}
