/**
 * A one-connection loopback relay that puts a PROXY header in front of a WebSocket tunnel's backend connection. Bun's
 * WebSocket client cannot write bytes before its handshake, so for a pool with send-proxy it connects to this relay
 * instead; the relay connects to the backend, writes the header, then passes bytes both ways unchanged (Pipe:
 * backpressure and half-close). It listens until its one connection arrives and never longer.
 */
import type { Socket, TCPSocketListener } from "bun";
import { Pipe } from "../l4/pipe.ts";

/** One side of the relay: its socket and the pipe that carries what it sends to the other side. */
interface Side {
  socket: Socket<Side> | null;
  /** Bytes from this side toward the other. */
  out: Pipe | null;
  closed: boolean;
}

export class ProxyRelay {
  readonly #listener: TCPSocketListener<Side>;
  readonly #local: Side = { socket: null, out: null, closed: false };
  readonly #backend: Side = { socket: null, out: null, closed: false };
  #listening = true;
  #closing = false;

  /** Starts listening on 127.0.0.1 (a free port) for the connection to relay to `host`:`port` after `header`. */
  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly header: Uint8Array,
  ) {
    this.#listener = Bun.listen<Side>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      data: this.#local,
      socket: {
        open: (socket) => this.#accepted(socket),
        data: (socket, bytes) => socket.data.out?.push(bytes),
        drain: () => this.#backend.out?.drain(),
        end: (socket) => this.#peerEnded(socket.data),
        close: (socket) => this.#closed(socket.data),
      },
    });
  }

  /** Where the WebSocket client connects ("127.0.0.1:port"). */
  get address(): string {
    return `127.0.0.1:${this.#listener.port}`;
  }

  /**
   * The tunnel ended or its handshake failed: stop listening, and send the WebSocket client a FIN after what is queued
   * toward it. Its socket then closes, and the backend gets a FIN after what the client sent last (a close frame in
   * flight still reaches it); each side closes when its peer does.
   */
  close(): void {
    this.#stopListening();
    if (this.#closing) return;
    this.#closing = true;
    if (this.#backend.out) this.#backend.out.end();
    else this.#local.socket?.terminate();
  }

  #stopListening(): void {
    if (!this.#listening) return;
    this.#listening = false;
    this.#listener.stop(false);
  }

  #accepted(socket: Socket<Side>): void {
    if (this.#local.socket || this.#closing) {
      // A connection past the first (a race with stopping): not ours, and nothing of it may touch the relay's sides.
      socket.data = { socket: null, out: null, closed: true };
      return void socket.terminate();
    }
    this.#stopListening();
    socket.data = this.#local;
    this.#local.socket = socket;
    this.#local.out = new Pipe(socket);
    Bun.connect<Side>({
      hostname: this.host,
      port: this.port,
      allowHalfOpen: true,
      data: this.#backend,
      socket: {
        open: (backend) => this.#connected(backend),
        connectError: () => this.#local.socket?.terminate(),
        data: (backend, bytes) => backend.data.out?.push(bytes),
        drain: () => this.#local.out?.drain(),
        end: (backend) => this.#peerEnded(backend.data),
        close: (backend) => this.#closed(backend.data),
      },
    }).catch(() => this.#local.socket?.terminate());
  }

  #connected(backend: Socket<Side>): void {
    const local = this.#local.socket;
    if (this.#local.closed || !local) return void backend.terminate();
    this.#backend.socket = backend;
    this.#backend.out = new Pipe(backend);
    this.#backend.out.attach(local);
    this.#local.out!.attach(backend, this.header);
  }

  /** A FIN from `side`: passed on to the other once what came before it is written. */
  #peerEnded(side: Side): void {
    side.out?.end();
  }

  /** One side is gone: the other gets a FIN after what is queued toward it (at once when nothing can be). */
  #closed(side: Side): void {
    if (side !== this.#local && side !== this.#backend) return;
    side.closed = true;
    const other = side === this.#local ? this.#backend : this.#local;
    if (other.closed) return;
    if (side.out) side.out.end();
    else other.socket?.terminate();
  }
}
