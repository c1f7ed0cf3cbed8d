/**
 * One relayed TCP connection: the client's socket, the backend's once connected, a Pipe each way, and how it ends.
 * A FIN from either side is passed on after the bytes before it (half-close: a client may send its request, shut
 * its side, and still read the answer); the connection is over when both sockets have closed.
 */
import type { Socket } from "bun";
import type { Backend } from "../pool/backend.ts";
import type { ConnectionSpan } from "../tracing/spans.ts";
import type { ListenerCounts, TcpRejection } from "./tcp-stats.ts";
import { Pipe } from "./pipe.ts";

/** What a connection reports to when it ends (its listener). */
export interface ConnectionOwner {
  readonly listen: string;
  readonly counts: ListenerCounts;
  ended(connection: TcpConnection): void;
}

/** A connect to one backend on the connection's behalf; abandoned when it timed out or the client left meanwhile. */
export interface Attempt {
  connection: TcpConnection;
  backend: Backend;
  abandoned: boolean;
  /** Its socket opened (before any byte from the backend is read). */
  opened(socket: Socket<Attempt>): void;
}

export type EndReason = "closed" | "idle-timeout" | "drained" | TcpRejection;

export class TcpConnection {
  readonly startedAt = performance.now();
  lastActivity = this.startedAt;
  /** Reading the ClientHello, connecting to a backend, or relaying. */
  phase: "hello" | "connecting" | "relaying" = "connecting";
  /** Client to backend. */
  readonly up: Pipe;
  /** Backend to client; made when the backend's socket opens. */
  down: Pipe | null = null;
  serverName = "";
  pool = "";
  idleTimeoutMs = 0;
  backend: Backend | null = null;
  #backendSocket: Socket<Attempt> | null = null;
  #clientOpen = true;
  #backendOpen = false;
  #over = false;
  endReason: EndReason = "closed";
  /** Its span, when tracing is on and its trace sampled. */
  span: ConnectionSpan | null = null;
  /** The client's address and port, as the access log writes it (read at once: a closed socket has no port). */
  readonly clientAddress: string;

  constructor(
    readonly client: Socket<TcpConnection>,
    readonly owner: ConnectionOwner,
  ) {
    const { remoteAddress, remotePort } = client;
    this.clientAddress = `${remoteAddress.includes(":") ? `[${remoteAddress}]` : remoteAddress}:${remotePort}`;
    this.up = new Pipe(client);
    owner.counts.connections++;
    owner.counts.active++;
  }

  get over(): boolean {
    return this.#over;
  }

  fromClient(bytes: Uint8Array): void {
    this.lastActivity = performance.now();
    this.owner.counts.bytesIn += bytes.length;
    this.up.push(bytes);
  }

  /** The backend's socket is open: what the client sent so far goes first (after `prefix`, a PROXY header). */
  connected(socket: Socket<Attempt>, backend: Backend, prefix?: Uint8Array): void {
    this.phase = "relaying";
    this.backend = backend;
    backend.inflight++;
    this.#backendSocket = socket;
    this.#backendOpen = true;
    this.down = new Pipe(socket);
    this.down.attach(this.client);
    this.up.attach(socket, prefix);
  }

  fromBackend(bytes: Uint8Array): void {
    this.lastActivity = performance.now();
    this.owner.counts.bytesOut += bytes.length;
    this.down!.push(bytes);
  }

  clientClosed(): void {
    this.#clientOpen = false;
    this.up.end();
    this.settle();
  }

  backendClosed(): void {
    this.#backendOpen = false;
    this.down?.end();
    this.settle();
  }

  /** lb ends it (a refusal, the idle timeout, a drain's deadline): both sockets are closed (a FIN each) now. */
  close(reason: EndReason): void {
    if (this.#over) return;
    this.endReason = reason;
    if (reason !== "closed" && reason !== "idle-timeout" && reason !== "drained") this.owner.counts.reject(reason);
    if (this.#backendOpen) this.#backendSocket!.end();
    if (this.#clientOpen) this.client.end();
    this.#clientOpen = this.#backendOpen = false;
    this.#finish();
  }

  /**
   * After a side closed, a FIN came, or a pipe drained: a closed side's FIN goes on once what it sent is written, and
   * then the other side, which nothing more can reach, is closed too. Over when both are closed.
   */
  settle(): void {
    if (this.#over) return;
    if (!this.#clientOpen && this.phase !== "relaying") return this.#finish(); // a connect under way is abandoned
    if (!this.#clientOpen && this.#backendOpen && this.up.finished) this.#backendSocket!.end();
    if (!this.#backendOpen && this.#clientOpen && this.down!.finished) this.client.end();
    if (!this.#clientOpen && !this.#backendOpen) this.#finish();
  }

  #finish(): void {
    if (this.#over) return;
    this.#over = true;
    this.owner.counts.active--;
    if (this.backend) this.backend.inflight--;
    this.owner.ended(this);
  }
}
