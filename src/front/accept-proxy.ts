/**
 * --accept-proxy: the proxy port as a Bun.listen socket that reads each connection's PROXY header (v1 or v2, from a
 * --proxy-trusted peer only) and relays the rest of its bytes both ways to the Bun.serve listener on a loopback port,
 * which does HTTP, TLS and HTTP/2 as without it. Bun.serve parses HTTP from a connection's first byte and has no hook
 * before it, so this hop is the way to keep it as the front; Bun.serve on a unix socket would save the loopback TCP,
 * but its requestIP is null there, and the relay's local port is what ties a request to its client (addressOf).
 */
import type { Socket, TCPSocketListener } from "bun";
import { type Cidr, inRanges } from "../net/ip.ts";
import { Pipe } from "../l4/pipe.ts";
import { type ProxyAddresses, decodeProxyHeader } from "../net/proxy-protocol.ts";

/**
 * What became of a connection: its header gave addresses (accepted) or none (local: the balancer's own health check,
 * v2 LOCAL or v1 UNKNOWN, speaking for itself); or it was closed: a peer outside --proxy-trusted (untrusted), no valid
 * header (invalid), the connection closed before a whole one (truncated), or none within the client timeout (timeout).
 */
export const PROXY_OUTCOMES = ["accepted", "local", "untrusted", "invalid", "truncated", "timeout"] as const;
export type ProxyOutcome = (typeof PROXY_OUTCOMES)[number];

export interface AcceptProxySettings {
  /** Peers that may send a header; anyone else is closed at once. */
  trusted: readonly Cidr[];
  /** Longest wait for a whole header, and for a client to take the end of an answer, in ms (--client-timeout). */
  headerTimeoutMs: number;
  /** Each connection's outcome, counted. */
  outcome(outcome: ProxyOutcome, peer: string, reason?: string): void;
}

export class AcceptProxyFront {
  readonly #listener: TCPSocketListener<Relay>;
  /** The Bun.serve listener's loopback port: a certificate reload moves new connections to another. */
  target: number;
  /**
   * The client's addresses by the relay connection's local port, which is the peer port Bun.serve reports, with that
   * connection's local address: a local process may bind the same port on another loopback address (127.0.0.2).
   */
  readonly #addresses = new Map<number, { from: string; addresses: ProxyAddresses }>();
  readonly #relays = new Set<Relay>();

  constructor(
    hostname: string,
    port: number,
    target: number,
    reusePort: boolean,
    readonly settings: AcceptProxySettings,
  ) {
    this.target = target;
    this.#listener = Bun.listen<Relay>({
      hostname,
      port,
      allowHalfOpen: true,
      // Bun.listen takes reusePort (as Bun.serve does) though its types do not say so: workers share the port.
      ...({ reusePort } as object),
      socket: {
        open: (client) => {
          client.data = new Relay(this, client);
          this.#relays.add(client.data);
          client.data.start();
        },
        data: (client, bytes) => client.data.clientData(bytes),
        drain: (client) => client.data.drained("client"),
        end: (client) => client.data.clientEnded(),
        close: (client) => client.data.clientClosed(),
        error() {},
      },
    });
  }

  get port(): number {
    return this.#listener.port;
  }

  /** The client behind a connection to Bun.serve from `address`:`port` (undefined: not a relay connection). */
  addressesOf(address: string, port: number): ProxyAddresses | undefined {
    const linked = this.#addresses.get(port);
    return linked?.from === address ? linked.addresses : undefined;
  }

  /** Stops accepting; relays already open go on until their connections close. */
  stop(): void {
    this.#listener.stop(false);
  }

  /** Closes the listener and every relay now. */
  close(): void {
    this.#listener.stop(true);
    for (const relay of this.#relays) relay.close();
  }

  /** A relay's connection to Bun.serve is open from `from`:`port`, for the client at `addresses`. */
  linked(from: string, port: number, addresses: ProxyAddresses): void {
    this.#addresses.set(port, { from, addresses });
  }

  /** A relay is over (`port`: its connection to Bun.serve's, 0 when it had none). */
  unlinked(relay: Relay, port: number): void {
    this.#relays.delete(relay);
    if (port) this.#addresses.delete(port);
  }
}

const EMPTY = new Uint8Array(0);

/** One client connection: its header read, then its bytes relayed to and from its connection to Bun.serve. */
class Relay {
  /** Bytes received while the header is read (it may come in pieces). */
  #received: Uint8Array = EMPTY;
  #timer: Timer | null = null;
  #inner: Socket<Relay> | null = null;
  #innerPort = 0;
  /** client → Bun.serve: holds what follows the header until the connection to Bun.serve is open. */
  readonly #up: Pipe;
  /** The header was read: what comes from the client goes up. */
  #headerRead = false;
  /** Bun.serve → client, once connected. */
  #down: Pipe | null = null;
  #closed = false;

  constructor(
    private readonly front: AcceptProxyFront,
    readonly client: Socket<Relay>,
  ) {
    this.#up = new Pipe(client);
  }

  /** A peer outside --proxy-trusted is closed at once; the others have the client timeout to send a whole header. */
  start(): void {
    const { client, front } = this;
    const { trusted, headerTimeoutMs } = front.settings;
    if (!inRanges(client.remoteAddress, trusted)) {
      this.#refuse("untrusted", "not in --proxy-trusted");
      return;
    }
    this.#timer = setTimeout(() => this.#refuse("timeout", `no whole PROXY header within ${headerTimeoutMs} ms`), headerTimeoutMs);
  }

  clientData(bytes: Uint8Array): void {
    if (this.#headerRead) return this.#up.push(bytes);
    if (this.#closed) return;
    this.#received = this.#received.length ? Buffer.concat([this.#received, bytes]) : bytes;
    const decoded = decodeProxyHeader(this.#received);
    if (decoded.state === "incomplete") return;
    if (decoded.state === "invalid") return this.#refuse("invalid", decoded.reason);
    clearTimeout(this.#timer!);
    const { client } = this;
    const own = { source: { address: client.remoteAddress, port: client.remotePort }, destination: { address: client.localAddress, port: client.localPort } };
    this.front.settings.outcome(decoded.addresses ? "accepted" : "local", client.remoteAddress);
    this.#headerRead = true;
    const rest = this.#received.subarray(decoded.length);
    this.#received = EMPTY;
    if (rest.length) this.#up.push(rest);
    const addresses = decoded.addresses ?? own;
    Bun.connect<Relay>({ hostname: "127.0.0.1", port: this.front.target, allowHalfOpen: true, data: this, socket: INNER_HANDLERS }).then(
      (inner) => this.#linked(inner, addresses),
      () => this.close(),
    );
  }

  #linked(inner: Socket<Relay>, addresses: ProxyAddresses): void {
    if (this.#closed) return void inner.terminate();
    this.#inner = inner;
    this.#innerPort = inner.localPort;
    // Before any byte reaches Bun.serve, so a request always finds its client.
    this.front.linked(inner.localAddress, this.#innerPort, addresses);
    inner.setNoDelay(true);
    this.client.setNoDelay(true);
    this.#up.attach(inner);
    this.#down = new Pipe(inner);
    this.#down.attach(this.client);
  }

  /** The client's FIN: passed on after what came before it, or the end of a header that never completed. */
  clientEnded(): void {
    if (this.#closed) return;
    if (this.#headerRead) this.#up.end();
    else this.#refuse("truncated", "closed before a whole PROXY header");
  }

  /** The client's connection closed: a reset before a whole header (HAProxy's plain `check` resets at once) is counted too. */
  clientClosed(): void {
    if (this.#headerRead || this.#closed) return this.close();
    this.#refuse("truncated", "reset before a whole PROXY header");
  }

  innerData(bytes: Uint8Array): void {
    this.#down?.push(bytes);
  }

  /** A socket can take more: the pipe writing to it goes on. */
  drained(side: "client" | "inner"): void {
    (side === "client" ? this.#down : this.#up)?.drain();
  }

  innerEnded(): void {
    this.#down?.end();
  }

  /** Bun.serve closed its side: the client gets what is still on its way, then a FIN (or is closed, if it is gone). */
  innerClosed(): void {
    this.front.unlinked(this, this.#innerPort);
    this.#innerPort = 0;
    if (this.#closed) return;
    if (!this.#down?.waitingBytes) return this.close();
    this.#down.end();
    // A client that reads no more is not waited for longer than one that sends nothing.
    this.#timer = setTimeout(() => this.close(), this.front.settings.headerTimeoutMs);
  }

  /** The client's connection is closed: its relay to Bun.serve is cut (Bun.serve sees the client leave). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer!);
    this.client.end();
    this.#inner?.terminate();
    if (!this.#inner) this.front.unlinked(this, 0);
  }

  #refuse(outcome: ProxyOutcome, reason: string): void {
    this.front.settings.outcome(outcome, this.client.remoteAddress, reason);
    this.close();
  }
}

const INNER_HANDLERS = {
  data: (inner: Socket<Relay>, bytes: Buffer) => inner.data.innerData(bytes),
  drain: (inner: Socket<Relay>) => inner.data.drained("inner"),
  end: (inner: Socket<Relay>) => inner.data.innerEnded(),
  close: (inner: Socket<Relay>) => inner.data.innerClosed(),
  error() {},
};
