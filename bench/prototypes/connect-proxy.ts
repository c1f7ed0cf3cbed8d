/**
 * PROTOTYPE FOR MEASUREMENT ONLY. This is not lb's code and not fit to serve anything: it exists to answer "is
 * fetch the wall?" by putting a hand-written HTTP/1.1 upstream client on Bun.connect behind the same Bun.serve front.
 *
 *   bun bench/prototypes/connect-proxy.ts --port 8080 http://127.0.0.1:9001 http://127.0.0.1:9002
 *   POOL_MAX=64 bun bench/prototypes/connect-proxy.ts ...     # connections per backend (default 128)
 *
 * What it does: round robin over the backend URLs; per backend a pool of keep-alive sockets (one request per socket
 * at a time, a free-list of idle ones, at most POOL_MAX, requests beyond that wait FIFO); the client's method, path
 * and headers are copied minus hop-by-hop ones; request bodies are read whole and sent with a Content-Length. The
 * response's status line and headers are parsed; Content-Length, chunked and read-until-close bodies are read whole
 * and handed to the client as one Uint8Array (so it answers with a Content-Length).
 * What it leaves out on purpose: timeouts, retries beyond one resend of a request whose pooled socket closed before
 * any answer byte, health checks, X-Forwarded-*, request ids, logging, streaming, trailers, header-size limits,
 * non-ASCII header values (written as UTF-8), Connection-listed headers, pipelining, TLS, WebSockets.
 */
import type { Socket } from "bun";

const HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate"]);
const POOL_MAX = Number(process.env.POOL_MAX ?? 128);

interface Exchange {
  head: string;
  body: Uint8Array | null;
  isHead: boolean;
  resent: boolean;
  resolve(response: Response): void;
  reject(error: unknown): void;
}

interface Upstream {
  hostname: string;
  port: number;
  idle: Conn[];
  open: number;
  waiters: Exchange[];
}

const enum State { Head, Length, Chunked, Trailers, UntilClose }

class Conn {
  socket: Socket<Conn> | null = null;
  x: Exchange | null = null;
  buf: Buffer | null = null; // bytes received and not yet parsed
  out: Buffer | null = null; // bytes of the request the socket did not take yet
  state = State.Head;
  gotBytes = false;
  status = 0;
  statusText = "";
  headers: [string, string][] = [];
  keepAlive = true;
  body: Uint8Array | null = null; // Content-Length body, filled in place
  filled = 0;
  pieces: Uint8Array[] = []; // chunked / until-close body
  chunkLeft = -1; // -1: expecting a size line; 0: expecting the CRLF after a chunk's data; > 0: data bytes to go

  constructor(readonly up: Upstream) {}

  send(x: Exchange): void {
    this.x = x;
    this.state = State.Head;
    this.gotBytes = false;
    this.write(x.head);
    if (x.body) this.write(x.body);
  }

  write(data: string | Uint8Array): void {
    if (this.out) {
      this.out = Buffer.concat([this.out, typeof data === "string" ? Buffer.from(data) : data]);
      return;
    }
    const written = this.socket!.write(data);
    const length = typeof data === "string" ? Buffer.byteLength(data) : data.length;
    if (written < length) this.out = Buffer.from((typeof data === "string" ? Buffer.from(data) : data).subarray(Math.max(written, 0)));
  }

  flush(): void {
    const out = this.out;
    if (!out) return;
    this.out = null;
    this.write(out);
  }

  onData(chunk: Buffer): void {
    if (!this.x) return; // nothing asked: ignore (a real client would close the socket)
    this.gotBytes = true;
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf && this.x) {
      const b: Buffer = this.buf;
      if (this.state === State.Head) {
        const end = b.indexOf("\r\n\r\n");
        if (end < 0) return;
        this.buf = end + 4 < b.length ? b.subarray(end + 4) : null;
        this.parseHead(b.toString("latin1", 0, end));
      } else if (this.state === State.Length) {
        const n = Math.min(this.body!.length - this.filled, b.length);
        this.body!.set(n === b.length ? b : b.subarray(0, n), this.filled);
        this.filled += n;
        this.buf = n < b.length ? b.subarray(n) : null;
        if (this.filled === this.body!.length) this.finish(this.body);
      } else if (this.state === State.Chunked && this.chunkLeft > 0) {
        const n = Math.min(this.chunkLeft, b.length);
        this.pieces.push(b.subarray(0, n));
        this.chunkLeft -= n;
        this.buf = n < b.length ? b.subarray(n) : null;
      } else if (this.state === State.UntilClose) {
        this.pieces.push(b);
        this.buf = null;
      } else {
        // A line: a chunk size, the CRLF after a chunk's data, or a trailer line / the empty line that ends them.
        const eol = b.indexOf("\r\n");
        if (eol < 0) return;
        this.buf = eol + 2 < b.length ? b.subarray(eol + 2) : null;
        if (this.state === State.Trailers) {
          if (eol === 0) this.finish(Buffer.concat(this.pieces));
        } else if (this.chunkLeft === 0) {
          this.chunkLeft = -1;
        } else {
          const size = parseInt(b.toString("latin1", 0, eol), 16);
          if (size === 0) this.state = State.Trailers;
          else this.chunkLeft = size;
        }
      }
    }
  }

  parseHead(head: string): void {
    const lines = head.split("\r\n");
    const statusLine = lines[0]!;
    this.status = Number(statusLine.slice(9, 12));
    this.statusText = statusLine.slice(13);
    this.keepAlive = statusLine.startsWith("HTTP/1.1");
    this.headers = [];
    let length = -1;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      else if (name === "transfer-encoding") chunked = value.toLowerCase().includes("chunked");
      else if (name === "connection" && value.toLowerCase().includes("close")) this.keepAlive = false;
      else if (!HOP.has(name)) this.headers.push([name, value]);
    }
    if (this.status >= 100 && this.status < 200) return; // 100 Continue and the like: the real answer follows
    if (this.x!.isHead || this.status === 204 || this.status === 304) {
      if (this.x!.isHead && length >= 0) this.headers.push(["content-length", String(length)]);
      this.finish(null);
    } else if (chunked) {
      this.state = State.Chunked;
      this.chunkLeft = -1;
      this.pieces = [];
    } else if (length >= 0) {
      this.state = State.Length;
      this.body = new Uint8Array(length);
      this.filled = 0;
      if (length === 0) this.finish(null);
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
      this.pieces = [];
    }
  }

  finish(body: Uint8Array | null): void {
    const x = this.x!;
    this.x = null;
    this.buf = null;
    this.body = null;
    this.pieces = [];
    const response = new Response(body, { status: this.status, statusText: this.statusText, headers: this.headers });
    if (this.keepAlive) release(this);
    else this.socket!.end();
    x.resolve(response);
  }

  onClose(): void {
    const up = this.up;
    up.open--;
    const at = up.idle.indexOf(this);
    if (at >= 0) up.idle.splice(at, 1);
    const x = this.x;
    this.x = null;
    if (x && this.state === State.UntilClose) {
      this.x = x;
      this.keepAlive = false;
      this.finish(Buffer.concat(this.pieces));
    } else if (x && !this.gotBytes && !x.resent) {
      x.resent = true; // a pooled socket the backend closed as it was reused: send once more on another
      dispatch(up, x);
    } else if (x) {
      x.reject(new Error("backend closed the connection mid-answer"));
    }
    const waiting = up.waiters.shift();
    if (waiting) dispatch(up, waiting);
  }
}

const handlers = {
  data(socket: Socket<Conn>, chunk: Buffer) { socket.data.onData(chunk); },
  drain(socket: Socket<Conn>) { socket.data.flush(); },
  close(socket: Socket<Conn>) { socket.data.onClose(); },
  error() {}, // close follows
};

function dispatch(up: Upstream, x: Exchange): void {
  const idle = up.idle.pop();
  if (idle) return idle.send(x);
  if (up.open >= POOL_MAX) {
    up.waiters.push(x);
    return;
  }
  up.open++;
  const conn = new Conn(up);
  Bun.connect<Conn>({ hostname: up.hostname, port: up.port, data: conn, socket: handlers }).then(
    (socket) => {
      conn.socket = socket;
      socket.setNoDelay(true);
      conn.send(x);
    },
    (error) => {
      up.open--;
      x.reject(error);
    },
  );
}

function release(conn: Conn): void {
  const waiting = conn.up.waiters.shift();
  if (waiting) conn.send(waiting);
  else conn.up.idle.push(conn);
}

// ---- the front: Bun.serve, round robin ----
const args = process.argv.slice(2);
const portAt = args.indexOf("--port");
const port = portAt >= 0 ? Number(args.splice(portAt, 2)[1]) : 8080;
const upstreams: Upstream[] = args.map((u) => {
  const url = new URL(u);
  return { hostname: url.hostname, port: Number(url.port || 80), idle: [], open: 0, waiters: [] };
});
if (upstreams.length === 0) {
  process.stderr.write("usage: bun bench/prototypes/connect-proxy.ts --port P http://host:port ...\n");
  process.exit(2);
}
let next = 0;

const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  development: false,
  async fetch(request) {
    const up = upstreams[next]!;
    next = (next + 1) % upstreams.length;
    const url = request.url;
    let head = `${request.method} ${url.slice(url.indexOf("/", url.indexOf("://") + 3))} HTTP/1.1\r\n`;
    for (const [name, value] of request.headers) if (!HOP.has(name) && name !== "content-length") head += `${name}: ${value}\r\n`;
    let body: Uint8Array | null = null;
    if (request.method !== "GET" && request.method !== "HEAD" && request.body) {
      body = await request.bytes();
      head += `content-length: ${body.length}\r\n`;
    }
    head += "\r\n";
    try {
      return await new Promise<Response>((resolve, reject) =>
        dispatch(up, { head, body, isHead: request.method === "HEAD", resent: false, resolve, reject }),
      );
    } catch (error) {
      return new Response(`bad gateway: ${error}\n`, { status: 502 });
    }
  },
});
process.stderr.write(`connect-proxy listening on http://127.0.0.1:${server.port} (pool ${POOL_MAX} per backend)\n`);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(0));
