/**
 * The keep-alive connections to one backend: idle ones are reused most recently used first (the warmest socket, and
 * the least likely to have met the backend's own idle timeout), a closed one is dropped at once, and there is no cap:
 * a request that finds no idle connection opens one (--max-inflight is the way to bound a backend).
 */
import { isIP } from "node:net";
import { Connection, type ConnectionOwner, type Exchange, SOCKET_HANDLERS } from "./connection.ts";
import { failure } from "./failure.ts";
import type { UpstreamSettings } from "./client.ts";

export interface PoolHooks {
  /** A request resent on a fresh connection after a pooled one closed unanswered. */
  onResend(origin: string): void;
}

export class OriginPool implements ConnectionOwner {
  readonly authority: string;
  readonly #hostname: string;
  readonly #port: number;
  readonly #https: boolean;
  /** Idle connections, oldest first: reuse takes from the end, the idle timeout trims the start. */
  readonly idle: Connection[] = [];
  /** Connections open or opening, busy or idle. */
  open = 0;
  /** The backend left the pool: connections close as they become idle. */
  forgotten = false;
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

  /** Sends on the most recently used idle connection (one past its idle limit is closed instead), or on a new one. */
  send(exchange: Exchange): void {
    const { idleTimeoutMs } = this.settings();
    const now = performance.now();
    for (let idle = this.idle.pop(); idle; idle = this.idle.pop()) {
      if (now - idle.idleSince < idleLimit(idle, idleTimeoutMs)) return idle.start(exchange);
      idle.destroy();
    }
    this.#connect(exchange);
  }

  #connect(exchange: Exchange): void {
    const { connectTimeoutMs, tls } = this.settings();
    const connection = new Connection(this, this.#https ? (tls?.rejectUnauthorized ?? true) : null);
    this.open++;
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
    if (this.forgotten || idleLimit(connection, this.settings().idleTimeoutMs) <= 0) return connection.destroy();
    connection.idleSince = performance.now();
    this.idle.push(connection);
  }

  closed(connection: Connection): void {
    this.open--;
    const at = this.idle.indexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
  }

  resend(exchange: Exchange): void {
    this.hooks.onResend(this.origin);
    this.#connect(exchange);
  }

  /**
   * Closes the connections idle for longer than `idleTimeoutMs`, or than the backend said it keeps them (less a
   * margin, so lb lets go first and never sends a request into the backend's close); cuts streams stalled for
   * `readTimeoutMs`.
   */
  closeExpired(now: number, { idleTimeoutMs, readTimeoutMs }: UpstreamSettings): void {
    const expired = this.idle.filter((connection) => now - connection.idleSince >= idleLimit(connection, idleTimeoutMs));
    for (const connection of expired) connection.destroy();
    for (const connection of [...this.streaming]) connection.cutIfStalled(now, readTimeoutMs);
  }

  closeIdle(): void {
    for (const connection of this.idle.splice(0)) connection.destroy();
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

/** A backend's own idle timeout is cut by this much: its close and lb's next request must not cross. */
const BACKEND_IDLE_MARGIN_MS = 1000;

function idleLimit(connection: Connection, idleTimeoutMs: number): number {
  if (connection.backendIdleMs === 0) return idleTimeoutMs;
  return Math.min(idleTimeoutMs, connection.backendIdleMs - BACKEND_IDLE_MARGIN_MS);
}
