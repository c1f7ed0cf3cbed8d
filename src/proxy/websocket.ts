/**
 * WebSocket tunnels. The backend connection is opened first, so a dead backend gives the client a 502 instead of an
 * open-then-close; then frames flow both ways unchanged (text and binary), with the subprotocol the backend chose and
 * close codes and reasons passed through. Flow control is real: while one peer reads slower than the other sends, lb
 * stops reading from the sender (TCP backpressure reaches it) instead of queueing for the reader.
 */
import type { ServerWebSocket } from "bun";

/** Bytes queued toward a peer at which lb stops reading from the other one... */
const PAUSE_AT_BYTES = 1024 * 1024;
/** ...and at or below which it reads again. */
const RESUME_AT_BYTES = 256 * 1024;
/** How often a paused client side looks whether the backend has taken its queue (the client WebSocket has no drain). */
const UPSTREAM_DRAIN_POLL_MS = 20;
/** A last resort, for a peer that never reads while the other sends one huge message: the tunnel is closed (1013). */
export const TUNNEL_BUFFER_LIMIT_BYTES = 64 * 1024 * 1024;

/** Whether a request asks to become a WebSocket, by its Upgrade field. */
export function isWebSocketUpgrade(upgrade: string | null): boolean {
  return upgrade?.toLowerCase() === "websocket";
}

/** ws:// or wss:// for a backend origin. */
export function webSocketUrl(origin: string, path: string): string {
  return origin.replace(/^http/, "ws") + path;
}

/** The headers the client's handshake carried that the backend handshake must not copy (it makes its own). */
export function tunnelRequestHeaders(headers: Headers): Headers {
  for (const name of [...headers.keys()]) if (name.startsWith("sec-websocket-")) headers.delete(name);
  return headers;
}

/** Close codes a peer may not send (1005 no status, 1006 abnormal, 1015 TLS) become ones it may. */
export function sendableCloseCode(code: number): number {
  if (code === 1005) return 1000;
  if (code === 1006 || code === 1015 || code < 1000 || code > 4999) return 1011;
  return code;
}

/** One tunnel: the backend socket, and the client socket once the upgrade has completed. */
export class Tunnel {
  #client: ServerWebSocket<Tunnel> | null = null;
  /** Backend frames that arrived before the client side was ready. */
  #early: Array<string | ArrayBuffer> = [];
  #closed = false;
  /** Set while the client side is paused, waiting for the backend to take what lb queued for it. */
  #drainPoll: Timer | null = null;

  constructor(
    readonly upstream: WebSocket,
    private readonly onClosed: () => void,
  ) {
    upstream.binaryType = "arraybuffer";
    upstream.onmessage = (event) => this.#toClient(event.data as string | ArrayBuffer);
    upstream.onclose = (event) => {
      this.#closeClient(sendableCloseCode(event.code), event.reason || "backend closed");
      // A client whose upgrade never opened will not close either: the tunnel ends with its backend side.
      if (!this.#client) this.#finish();
    };
  }

  attach(client: ServerWebSocket<Tunnel>): void {
    this.#client = client;
    for (const frame of this.#early.splice(0)) this.#toClient(frame);
    if (this.upstream.readyState >= WebSocket.CLOSING) this.#closeClient(1011, "backend closed");
  }

  fromClient(message: string | Buffer): void {
    if (this.upstream.readyState !== WebSocket.OPEN) return;
    this.upstream.send(message);
    const queued = this.upstream.bufferedAmount;
    if (queued > TUNNEL_BUFFER_LIMIT_BYTES) return this.#abort("backend reads too slowly");
    if (queued > PAUSE_AT_BYTES && this.#client && !this.#drainPoll) {
      // The backend reads slower than the client sends: stop reading the client until the backend caught up.
      const client = this.#client;
      client.pause();
      this.#drainPoll = setInterval(() => {
        if (this.upstream.bufferedAmount > RESUME_AT_BYTES && this.upstream.readyState === WebSocket.OPEN) return;
        this.#stopDrainPoll();
        client.resume();
      }, UPSTREAM_DRAIN_POLL_MS);
    }
  }

  /** The client took what lb had queued for it: read from the backend again. */
  clientDrained(): void {
    if (this.#client && this.#client.getBufferedAmount() <= RESUME_AT_BYTES) this.upstream.resume();
  }

  /** The client closed: pass its code and reason on (the WebSocket API only lets lb send 1000 and 3000–4999). */
  clientClosed(code: number, reason: string): void {
    const forward = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    if (this.upstream.readyState < WebSocket.CLOSING) this.upstream.close(forward, reason);
    this.#finish();
  }

  #toClient(frame: string | ArrayBuffer): void {
    if (!this.#client) {
      this.#early.push(frame);
      return;
    }
    this.#client.send(frame);
    const queued = this.#client.getBufferedAmount();
    if (queued > TUNNEL_BUFFER_LIMIT_BYTES) return this.#abort("client reads too slowly");
    // The client reads slower than the backend sends: stop reading the backend until the client's drain.
    if (queued > PAUSE_AT_BYTES) this.upstream.pause();
  }

  #closeClient(code: number, reason: string): void {
    if (this.#client && this.#client.readyState === WebSocket.OPEN) this.#client.close(code, reason);
  }

  #abort(reason: string): void {
    this.#closeClient(1013, reason);
    if (this.upstream.readyState < WebSocket.CLOSING) this.upstream.close(1000, reason);
  }

  #stopDrainPoll(): void {
    if (this.#drainPoll) clearInterval(this.#drainPoll);
    this.#drainPoll = null;
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopDrainPoll();
    this.onClosed();
  }
}

/** Bun.serve's websocket handlers: every tunnel is driven through its Tunnel object. */
export const tunnelHandlers = {
  open: (ws: ServerWebSocket<Tunnel>) => ws.data.attach(ws),
  message: (ws: ServerWebSocket<Tunnel>, message: string | Buffer) => ws.data.fromClient(message),
  drain: (ws: ServerWebSocket<Tunnel>) => ws.data.clientDrained(),
  close: (ws: ServerWebSocket<Tunnel>, code: number, reason: string) => ws.data.clientClosed(code, reason),
};

/** Bun's client refuses a handshake that selects none of the offered subprotocols (see openUpstream). */
const NO_PROTOCOL_SELECTED = /missing client protocol/i;

/**
 * Opens the backend side; resolves to the open socket, or to why it could not (refused, rejected, no answer in
 * time). Frames the backend sends at once are caught by the Tunnel built right after, before any await.
 *
 * A backend may answer without selecting any of the client's subprotocols (RFC 6455 §4.2.2 allows it; the client
 * then decides whether to go on). Bun's WebSocket client fails such a handshake, so lb makes it again without
 * offering any, and the client gets the backend's answer as it was: no subprotocol. `url` gives the address of each
 * handshake (a new relay's, with send-proxy); `serverName`, the name a wss:// backend's certificate is verified against
 * when the URL's host is a relay's.
 */
export async function openUpstream(url: () => string, headers: Headers, protocols: string[], timeoutMs: number, serverName?: string): Promise<WebSocket | string> {
  const opened = await handshake(url(), headers, protocols, timeoutMs, serverName);
  if (typeof opened === "string" && protocols.length > 0 && NO_PROTOCOL_SELECTED.test(opened)) {
    return handshake(url(), headers, [], timeoutMs, serverName);
  }
  return opened;
}

function handshake(url: string, headers: Headers, protocols: string[], timeoutMs: number, serverName: string | undefined): Promise<WebSocket | string> {
  return new Promise((resolve) => {
    const tls = serverName === undefined ? {} : { tls: { serverName } };
    const upstream = new WebSocket(url, { headers: Object.fromEntries(headers), protocols, ...tls } as unknown as string[]);
    let why = "the backend closed the connection";
    const timer = setTimeout(() => {
      upstream.close();
      resolve(`no handshake answer within ${timeoutMs}ms`);
    }, timeoutMs);
    upstream.onopen = () => {
      clearTimeout(timer);
      resolve(upstream);
    };
    // Bun's message is "WebSocket connection to '<url>' failed: <reason>": the reason is what the log needs.
    upstream.onerror = (event) => (why = String((event as ErrorEvent).message ?? why).replace(/^.*failed: /, ""));
    upstream.onclose = () => {
      clearTimeout(timer);
      resolve(why);
    };
  });
}
