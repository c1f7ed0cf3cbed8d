/**
 * One [[tcp]] listen address: accepts connections, reads the ClientHello's server name when its entries route by
 * name, picks the entry and a backend of its pool by the pool's policy, connects (a backend that refuses is marked
 * down and the next one tried: nothing was sent yet), and relays (tcp-connection.ts).
 */
import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import type { ListenAddress } from "../config/types.ts";
import type { ConnectionEntry } from "../log/access-log.ts";
import type { Policy, RequestContext } from "../balance/policy.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Backend } from "../pool/backend.ts";
import type { Pool } from "../pool/pool.ts";
import type { Tracer } from "../tracing/spans.ts";
import { type ProxyAddresses, type ProxyVersion, encodeProxyHeader } from "../net/proxy-protocol.ts";
import { classifyFailure } from "../upstream/failure.ts";
import { readClientHello } from "./client-hello.ts";
import { SniRoutes } from "./sni-routes.ts";
import { type Attempt, type ConnectionOwner, TcpConnection } from "./tcp-connection.ts";
import type { ListenerCounts } from "./tcp-stats.ts";

/** One [[tcp]] entry as a listener uses it (configure.ts builds it). */
export interface TcpEntry {
  sni?: readonly string[];
  pool: string;
  idleTimeoutMs: number;
}

/** Where a TCP pool's connections go, and how (configure.ts builds it; the pool is the running one). */
export interface TcpLane {
  pool: Pool;
  policy: Policy;
  connectTimeoutMs: number;
  /** The PROXY protocol version each backend connection starts with a header of (send-proxy); null: none. */
  sendProxy: ProxyVersion | null;
  /** A pool a reload added: settles when its first health round is done (until then none of its backends is up). */
  checked?: Promise<void>;
}

export interface ListenerParts {
  lanes(): ReadonlyMap<string, TcpLane>;
  metrics: Metrics;
  counts: ListenerCounts;
  /** Told of each connection when it ends: its access line. */
  ended(line: ConnectionEntry): void;
  /** Gives each connection a span; null when tracing is off. */
  tracer: Tracer | null;
}

const NO_HEADERS = new Headers();

export class TcpListener implements ConnectionOwner {
  readonly listen: string;
  readonly counts: ListenerCounts;
  readonly connections = new Set<TcpConnection>();
  #routes: SniRoutes<TcpEntry>;
  readonly #socket: TCPSocketListener<TcpConnection>;

  /** Binds now: an address in use throws here. */
  constructor(
    address: ListenAddress,
    listen: string,
    entries: readonly TcpEntry[],
    private readonly parts: ListenerParts,
  ) {
    this.listen = listen;
    this.counts = parts.counts;
    this.#routes = new SniRoutes(entries);
    const handlers: SocketHandler<TcpConnection> = {
      open: (socket) => this.#accept(socket),
      data: (socket, bytes) => this.#fromClient(socket.data, bytes),
      drain: (socket) => {
        socket.data.down?.drain();
        socket.data.settle();
      },
      end: (socket) => {
        socket.data.up.end();
        socket.data.settle();
      },
      close: (socket) => socket.data.clientClosed(),
      error: () => {}, // close follows
    };
    // The data each socket carries is set on open; Bun's type wants one for the listener as a whole.
    this.#socket = Bun.listen<TcpConnection>({ hostname: address.host, port: address.port, allowHalfOpen: true, socket: handlers, data: undefined as unknown as TcpConnection });
  }

  get port(): number {
    return this.#socket.port;
  }

  /** New entries take new connections; those open keep theirs. */
  reroute(entries: readonly TcpEntry[]): void {
    this.#routes = new SniRoutes(entries);
  }

  /** Stops accepting; open connections go on (the service drains them). */
  stopAccepting(): void {
    this.#socket.stop(false);
  }

  ended(connection: TcpConnection): void {
    this.connections.delete(connection);
    const line: ConnectionEntry = {
      client: connection.clientAddress,
      listen: this.listen,
      sni: connection.serverName,
      pool: connection.pool || "-",
      backend: connection.backend?.name ?? "-",
      bytesIn: connection.up.bytes,
      bytesOut: connection.down?.bytes ?? 0,
      totalMs: performance.now() - connection.startedAt,
      end: connection.endReason,
    };
    if (connection.span) endSpan(connection, line);
    this.parts.ended(line);
  }

  #accept(socket: Socket<TcpConnection>): void {
    const connection = new TcpConnection(socket, this);
    if (this.parts.tracer) connection.span = this.parts.tracer.connection();
    socket.data = connection;
    this.connections.add(connection);
    if (this.#routes.byName) connection.phase = "hello";
    else this.#route(connection, this.#routes.match(null));
  }

  #fromClient(connection: TcpConnection, bytes: Uint8Array): void {
    connection.fromClient(bytes);
    if (connection.phase !== "hello") return;
    const hello = readClientHello(connection.up.held());
    if (hello.kind === "more") return;
    if (hello.kind === "bad") return connection.close("bad-hello");
    if (hello.kind === "hello" && hello.serverName) connection.serverName = hello.serverName;
    this.#route(connection, this.#routes.match(hello.kind === "hello" ? hello.serverName : null));
  }

  #route(connection: TcpConnection, entry: TcpEntry | null): void {
    if (!entry) return connection.close("no-sni-match");
    connection.phase = "connecting";
    connection.pool = entry.pool;
    connection.idleTimeoutMs = entry.idleTimeoutMs;
    const lane = this.parts.lanes().get(entry.pool);
    if (!lane) return connection.close("no-backend");
    if (lane.checked) return void lane.checked.then(() => this.#connect(connection, lane));
    this.#connect(connection, lane);
  }

  #connect(connection: TcpConnection, lane: TcpLane): void {
    const request: RequestContext = { clientIp: connection.client.remoteAddress, path: "", headers: NO_HEADERS };
    this.#tryBackends(connection, lane, lane.policy.candidates(lane.pool.available(), request), 0);
  }

  /** Connects to candidates[index]; a refusal or a timeout moves on to the next one. */
  #tryBackends(connection: TcpConnection, lane: TcpLane, candidates: readonly Backend[], index: number): void {
    if (connection.over) return;
    const backend = candidates[index];
    if (!backend) return connection.close("no-backend");
    const next = () => this.#tryBackends(connection, lane, candidates, index + 1);
    const timer = setTimeout(() => {
      attempt.abandoned = true;
      if (connection.over) return;
      this.parts.metrics.of(backend.url).connectErrors++;
      next();
    }, lane.connectTimeoutMs);
    const attempt: Attempt = {
      connection,
      backend,
      abandoned: false,
      opened: (socket) => {
        clearTimeout(timer);
        if (attempt.abandoned || connection.over) {
          attempt.abandoned = true;
          return socket.terminate();
        }
        connection.connected(socket, backend, lane.sendProxy ? encodeProxyHeader(lane.sendProxy, addressesOf(connection.client)) : undefined);
      },
    };
    const { hostname, port } = addressOfBackend(backend);
    Bun.connect<Attempt>({ hostname, port, data: attempt, allowHalfOpen: true, socket: BACKEND_HANDLERS }).catch((error: unknown) => {
      clearTimeout(timer);
      if (attempt.abandoned) return;
      attempt.abandoned = true;
      const failure = classifyFailure(error);
      this.parts.metrics.of(backend.url).connectErrors++;
      if (failure.kind === "connect") lane.pool.recordConnectFailure(backend, `${failure.reason} (seen relaying a TCP connection)`);
      next();
    });
  }
}

const backendAddresses = new WeakMap<Backend, { hostname: string; port: number }>();

/** Where a tcp:// backend is: its URL parsed once per backend, not once per connection. */
function addressOfBackend(backend: Backend): { hostname: string; port: number } {
  let address = backendAddresses.get(backend);
  if (!address) {
    const { hostname, port } = new URL(backend.url);
    backendAddresses.set(backend, (address = { hostname: hostname.replace(/^\[|\]$/g, ""), port: Number(port) }));
  }
  return address;
}

/** A connection's span ends with what its access line says, in the semantic conventions' words where they have some. */
function endSpan(connection: TcpConnection, line: ConnectionEntry): void {
  // The address as read at accept: a closed socket has none.
  const address = line.client.slice(0, line.client.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  const attributes: Array<[string, string | number]> = [
    ["client.address", address],
    ["network.peer.address", address],
    ["lb.listen", line.listen],
    ["lb.pool", line.pool],
    ["lb.backend", line.backend],
    ["lb.bytes_in", line.bytesIn],
    ["lb.bytes_out", line.bytesOut],
    ["lb.end", line.end],
  ];
  if (line.sni) attributes.push(["tls.client.server_name", line.sni]);
  const refused = line.end !== "closed" && line.end !== "idle-timeout" && line.end !== "drained";
  connection.span!.end(line.listen, attributes, refused ? line.end : "");
}

/** The client's connection as the PROXY header tells it: its address and port, and the listener's. */
function addressesOf(client: Socket<TcpConnection>): ProxyAddresses {
  return { source: { address: client.remoteAddress, port: client.remotePort }, destination: { address: client.localAddress, port: client.localPort } };
}

/** The backend's side of a relayed connection. */
const BACKEND_HANDLERS: SocketHandler<Attempt> = {
  open: (socket) => socket.data.opened(socket),
  data: (socket, bytes) => {
    if (!socket.data.abandoned) socket.data.connection.fromBackend(bytes);
  },
  drain: (socket) => {
    if (socket.data.abandoned) return;
    socket.data.connection.up.drain();
    socket.data.connection.settle();
  },
  end: (socket) => {
    if (socket.data.abandoned) return;
    socket.data.connection.down?.end();
    socket.data.connection.settle();
  },
  close: (socket) => {
    if (!socket.data.abandoned) socket.data.connection.backendClosed();
  },
  error: () => {}, // close follows
  connectError: () => {}, // the promise Bun.connect returned rejects: the next backend is tried there
};
