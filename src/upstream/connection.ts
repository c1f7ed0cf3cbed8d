/**
 * One keep-alive connection to a backend, carrying one request at a time: it writes the request (the body with TCP
 * backpressure), reads the answer's head and body as they arrive, and hands the answer over whole or as a stream.
 * It ends each exchange exactly once and then goes back to its pool, or closes when it cannot be trusted again.
 */
import type { Socket } from "bun";
import { type BodyReader, bodyReaderFor } from "../http/h1/body-reader.ts";
import { joinInPlace } from "../http/h1/chunked.ts";
import { HeadReader } from "../http/h1/head-reader.ts";
import { encodeRequest } from "../http/h1/request-head.ts";
import { RESPONSE_HEAD_LIMIT_BYTES, type ResponseHead, parseResponseHead } from "../http/h1/response-head.ts";
import type { UpstreamRequest, UpstreamResponse } from "./client.ts";
import type { Exchange } from "./exchange.ts";
import { type Failure, type ProtocolErrorKind, classifyFailure, failure, malformed } from "./failure.ts";
import type { IdleLinks } from "./idle-list.ts";
import type { SetMember } from "./swap-set.ts";
import { capReceiveBuffer } from "./receive-buffer.ts";
import { ResponseStream, WHOLE_BODY_LIMIT_BYTES, WholeBody } from "./response-body.ts";
import { SocketWriter, pumpBody } from "./socket-writer.ts";

/** What a connection needs from the pool that owns it. */
export interface ConnectionOwner {
  /** "host:port" for a request without a Host of its own. */
  readonly authority: string;
  /** The connection finished an exchange and may carry another. */
  release(connection: Connection): void;
  /** The connection is closed (or never opened). */
  closed(connection: Connection): void;
  /** A request that met a stale pooled connection, to send again on a fresh one. */
  resend(exchange: Exchange): void;
  /** The connection passes an answer on as a stream from now on: its silence is watched (cutIfStalled). */
  streamStarted(connection: Connection): void;
  /** Its stream ended. */
  streamEnded(connection: Connection): void;
  /** The backend broke HTTP/1.1 on this connection (which then closes): counted and logged. */
  protocolError(kind: ProtocolErrorKind, detail: string): void;
}

const enum Reading {
  /** No exchange: idle in the pool, or connecting. */
  Nothing,
  Head,
  /** A body read whole into `#whole` (Content-Length) or `#pieces` (chunked, until close). */
  Whole,
  /** A body passed on as a stream. */
  Stream,
}

export class Connection implements IdleLinks<Connection>, SetMember {
  socket: Socket<Connection> | null = null;
  // Its place among its pool's idle connections (idle-list.ts), and among those passing a stream on (swap-set.ts).
  setIndex = -1;
  idleSince = -1;
  idlePrevious: Connection | null = null;
  idleNext: Connection | null = null;
  /** How long the backend keeps this connection idle by its word (Keep-Alive: timeout=N), in ms; Infinity if unsaid. */
  backendIdleMs = Number.POSITIVE_INFINITY;
  /** It has carried a request before: a close before any answer byte may be the backend's idle timeout. */
  reused = false;
  #closed = false;
  #exchange: Exchange | null = null;
  #reading = Reading.Nothing;
  #gotBytes = false;
  readonly #headReader = new HeadReader(RESPONSE_HEAD_LIMIT_BYTES);
  #head: ResponseHead | null = null;
  /** The response body's framing, while it is read. */
  #body: BodyReader | null = null;
  /** The body while it is kept whole, or passed on as a stream. */
  #wholeBody: WholeBody | null = null;
  #stream: ResponseStream | null = null;
  /** Writes requests, keeping what the socket has not taken yet; made once it is open. */
  #writer: SocketWriter | null = null;
  #requestWritten = false;
  /** The answer has been read to its end (the request may still be going out). */
  #answerDone = false;
  #paused = false;
  /** The socket's receive buffer has been made small (tried the first time a client fell behind). */
  #receiveCapped = false;
  /** The answer just read allows another request on this connection. */
  #reusable = false;
  /** The socket error seen before the close, to say why it closed. */
  #error: unknown = null;
  /** Told once the connection can carry a request (after the TLS handshake for https), or why it cannot; then null. */
  #onReady: ((failed: Failure | null) => void) | null;

  constructor(
    readonly owner: ConnectionOwner,
    /** The client connection whose requests, and only whose, this connection carries (null: one request only). */
    readonly client: string | null,
    /** null for http://; for https://, whether the backend's certificate must verify. */
    private readonly verifyTls: boolean | null,
    onReady: (failed: Failure | null) => void,
  ) {
    this.#onReady = onReady;
  }

  /** Starts an exchange on this (open) connection. */
  start(exchange: Exchange): void {
    this.#exchange = exchange;
    exchange.carriedBy(this);
    this.#reading = Reading.Head;
    this.#gotBytes = false;
    this.#requestWritten = false;
    this.#answerDone = false;
    const { request } = exchange;
    const { body } = request;
    if (body instanceof ReadableStream) {
      const length = request.streamLength ?? -1;
      this.#writer!.write(encodeRequest(request.method, request.target, request.headers, this.owner.authority, length, null));
      void this.#pump(exchange, body, length);
    } else {
      this.#requestWritten = this.#writer!.write(encodeRequest(request.method, request.target, request.headers, this.owner.authority, body?.byteLength ?? null, body));
    }
  }

  /** Closes the socket now; the close handler ends whatever exchange it carried. */
  destroy(): void {
    if (this.#closed) return;
    if (this.socket) this.socket.terminate();
    else this.onClose(); // still connecting: the socket is dropped when it opens
  }

  // ---- writing ----

  onDrain(): void {
    if (!this.#writer?.drain()) return;
    if (this.#exchange && !(this.#exchange.request.body instanceof ReadableStream)) this.#requestWritten = true;
    this.#maybeDone();
  }

  /** Streams a request body; the client's body failing closes the connection, as the client's doing. */
  async #pump(exchange: Exchange, body: ReadableStream<Uint8Array>, length: number): Promise<void> {
    const current = () => this.#exchange === exchange && !this.#closed;
    try {
      if (!(await pumpBody(this.#writer!, body, length, current, () => exchange.restartDeadline()))) return;
      this.#requestWritten = true;
      this.#maybeDone();
    } catch {
      // The client's body failed (it left, or stalled): the backend got a part of a request. Close on it, and say
      // it was the client's doing, so the backend is not blamed for the answer that is cut with it.
      if (this.#exchange !== exchange) return;
      const why = failure("cancelled", "the client's body ended early");
      if (this.#reading === Reading.Stream) this.#bodyFailed(why);
      else {
        exchange.abandon(why);
        this.destroy();
      }
    }
  }

  // ---- reading ----

  onData(bytes: Buffer): void {
    const exchange = this.#exchange;
    if (!exchange || this.#answerDone) {
      // Nobody asked: a backend talking out of turn cannot be trusted with the next request.
      this.#stray(bytes, exchange ? "after an answer's end" : "on an idle connection");
      return;
    }
    this.#gotBytes = true;
    let rest: Buffer | null = bytes;
    while (rest && rest.length > 0 && this.#exchange === exchange && !this.#answerDone) {
      rest = this.#reading === Reading.Head ? this.#readHead(rest) : this.#readBody(rest);
    }
    if (rest && rest.length > 0 && this.#answerDone) this.#stray(rest, "after an answer's end");
    // A chunked (or until-close) answer that the read holding its head did not complete goes on as a stream now
    // (an event stream, a slow or large answer): read for longer first, it would hold every read that came meanwhile,
    // each as large as the kernel had queued, until a slow client took it.
    if (this.#exchange === exchange && this.#reading === Reading.Whole && this.#head?.framing !== "length" && !this.#answerDone) this.#openStream();
  }

  /** Bytes that answer no request: whatever they are, the connection cannot be trusted with another one. */
  #stray(bytes: Buffer, where: string): void {
    this.owner.protocolError("stray-bytes", `${bytes.length} bytes ${where}`);
    this.destroy();
  }

  /** Takes head bytes; returns the bytes after the head (or null while it is incomplete). */
  #readHead(bytes: Buffer): Buffer | null {
    const read = this.#headReader.push(bytes);
    if (read === null) return null;
    if (read === "too large") {
      this.#refuse("response head too large");
      return null;
    }
    const exchange = this.#exchange!;
    const head = parseResponseHead(read.head, exchange.request.method);
    if (typeof head === "string") {
      this.#refuse(head);
      return null;
    }
    const { rest } = read;
    // 1xx interim responses (100 Continue, 103 Early Hints) are skipped; the real one follows on the connection.
    if (head.status < 200) {
      if (head.status === 101) this.#refuse("101 Switching Protocols to a request that asked for no upgrade");
      return rest;
    }
    this.#head = head;
    this.#body = bodyReaderFor(head);
    if (!this.#body || this.#body.done) {
      this.#deliver(this.#body ? new Uint8Array(0) : null);
      this.#answerEnded();
      return rest;
    }
    if (head.framing === "length" && head.length <= WHOLE_BODY_LIMIT_BYTES) {
      this.#reading = Reading.Whole;
      this.#wholeBody = new WholeBody(head.length);
    } else if (head.framing === "length") this.#openStream();
    else {
      // Kept whole if the read that holds the head holds the whole body too (onData opens a stream otherwise).
      this.#reading = Reading.Whole;
      this.#wholeBody = new WholeBody(null);
    }
    return rest;
  }

  /** Takes body bytes; returns what is left over after the body's end (null or empty when nothing is). */
  #readBody(bytes: Buffer): Buffer | null {
    const body = this.#body!;
    const pieces: Uint8Array[] = [];
    const used = body.feed(bytes, pieces);
    if (used < 0) {
      const detail = `chunked body: ${body.error}`;
      this.owner.protocolError("malformed", detail);
      this.#bodyFailed(malformed(detail));
      return null;
    }
    // One piece per read, as for a Content-Length answer: Bun holds every piece it is given until the client takes
    // it, and a chunk's piece is a view that pins its whole read.
    if (pieces.length > 0) this.#take(joinInPlace(pieces));
    if (body.done) this.#bodyEnded();
    return used < bytes.length ? bytes.subarray(used) : null;
  }

  /** A piece of body data: kept (whole mode) or passed on (stream mode). */
  #take(piece: Uint8Array): void {
    if (this.#stream) this.#stream.push(piece);
    else if (!this.#wholeBody!.add(piece)) this.#openStream();
  }

  /** From now on the body is passed on as it arrives: what was kept first, then the rest. */
  #openStream(): void {
    const kept = this.#wholeBody?.kept() ?? [];
    this.#wholeBody = null;
    this.#reading = Reading.Stream;
    this.owner.streamStarted(this);
    // The backend is read only while Bun asks for more, one piece at a time; a piece that had to wait in the queue
    // means the client is behind, and the backend is then read in small pieces.
    const stream: ResponseStream = new ResponseStream({
      reading: (on) => this.#pause(!on),
      behind: () => this.#capReceiveBuffer(),
      cancelled: () => {
        this.#streamEnded();
        this.#exchange = null;
        this.#reading = Reading.Nothing;
        this.destroy();
      },
    });
    this.#stream = stream;
    for (const piece of kept) stream.push(piece);
    this.#deliver(stream.body);
  }

  #deliver(body: UpstreamResponse["body"]): void {
    const head = this.#head!;
    this.#exchange!.resolve({ status: head.status, statusText: head.statusText, headers: head.headers, body });
  }

  /** The body has been read to its end. */
  #bodyEnded(): void {
    if (this.#stream) {
      this.#stream.end();
      this.#streamEnded();
    } else this.#deliver(this.#wholeBody!.bytes());
    this.#answerEnded();
  }

  /**
   * Cuts a stream that has moved no byte for `limitMs`: the backend went silent, or (reading paused) the client
   * stopped reading. The client's own idle timeout does not run while an answer streams, so this is what bounds it.
   */
  cutIfStalled(now: number, limitMs: number): void {
    if (!this.#stream || this.#stream.stalledFor(now) < limitMs) return;
    const silence = `${Math.round(limitMs / 1000)}s`;
    this.#bodyFailed(
      this.#paused
        ? failure("cancelled", `the client read nothing for ${silence}`)
        : failure("timeout", `the backend sent nothing for ${silence}`),
    );
  }

  #streamEnded(failed?: Failure): void {
    const watcher = this.#exchange?.request.streamWatcher;
    const bytes = this.#stream?.bytes ?? 0;
    this.owner.streamEnded(this);
    this.#stream = null;
    watcher?.streamEnded(bytes, failed);
  }

  /** The body broke off (the backend closed or sent garbage): a failure before the answer went out, a cut stream after. */
  #bodyFailed(why: Failure): void {
    if (this.#stream) {
      this.#stream.fail(why.reason);
      this.#streamEnded(why);
    } else this.#exchange?.resolve(why);
    this.#reading = Reading.Nothing;
    this.#exchange = null;
    this.destroy();
  }

  /** The answer cannot be passed on: 502 material, and the connection is not to be trusted again. */
  #refuse(detail: string): void {
    this.owner.protocolError("malformed", detail);
    const exchange = this.#exchange!;
    this.#exchange = null;
    this.#reading = Reading.Nothing;
    exchange.resolve(malformed(detail));
    this.destroy();
  }

  #answerEnded(): void {
    this.#pause(false); // a stream's reader may have held it back: the next answer must flow
    this.#answerDone = true;
    // After an answer that has no body by definition (HEAD, 204, 304), a body the backend sends anyway would be read
    // as the next answer: such a connection is not reused.
    this.#reusable = (this.#head?.reusable ?? false) && this.#head?.framing !== "none";
    if (this.#head?.keepAliveMs) this.backendIdleMs = this.#head.keepAliveMs;
    this.#wholeBody = null;
    this.#body = null;
    this.#head = null;
    this.#maybeDone();
  }

  /** Once the answer is read and the request written, the connection goes back to its pool (or closes). */
  #maybeDone(): void {
    const exchange = this.#exchange;
    if (!this.#answerDone || !exchange) return;
    if (!this.#requestWritten) {
      // The backend answered before taking the whole request (a 413, say): the rest is not worth sending, and a
      // connection with half a request on it cannot carry another.
      this.#exchange = null;
      this.destroy();
      return;
    }
    this.#exchange = null;
    this.#reading = Reading.Nothing;
    this.reused = true;
    if (this.#reusable && !this.#writer?.pending) this.owner.release(this);
    else this.destroy();
  }

  /** Stops (or restarts) reading from the backend: TCP backpressure while the client reads slower than it sends. */
  #pause(paused: boolean): void {
    if (paused === this.#paused || !this.socket) return;
    this.#paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }

  /**
   * The client fell behind: from now on this backend is read in small pieces, so what lb holds while a client catches
   * up stays small (receive-buffer.ts). Once per connection.
   */
  #capReceiveBuffer(): void {
    if (this.#receiveCapped || !this.socket) return;
    this.#receiveCapped = true;
    capReceiveBuffer((this.socket as { fd?: number }).fd);
  }

  // ---- the socket's life ----

  onOpen(socket: Socket<Connection>): void {
    this.socket = socket;
    if (this.#closed) {
      socket.terminate(); // given up on while connecting
      return;
    }
    socket.setNoDelay(true);
    this.#writer = new SocketWriter(socket);
    if (this.verifyTls === null) this.#ready(null);
  }

  onHandshake(success: boolean, authorizationError: Error | null): void {
    if (success && (!authorizationError || !this.verifyTls)) return this.#ready(null);
    const code = (authorizationError as { code?: string } | null)?.code ?? "handshake failed";
    this.#ready(failure("connect", `TLS handshake failed (${code})`));
    this.destroy();
  }

  /** The connect itself failed (refused, unresolvable, no route). */
  onConnectError(error: unknown): void {
    if (this.#closed) return; // given up on already (the connect timed out): counted closed then
    this.#closed = true;
    this.owner.closed(this);
    this.#ready(classifyFailure(error));
  }

  #ready(failed: Failure | null): void {
    const onReady = this.#onReady;
    this.#onReady = null;
    onReady?.(failed);
  }

  onError(error: unknown): void {
    this.#error = error;
  }

  onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.owner.closed(this);
    this.#writer?.close(); // a request body waiting to write stops at its next look
    const why = () => (this.#error ? classifyFailure(this.#error).reason : "connection closed");
    if (this.#onReady) return this.#ready(failure("connect", `${why()} while connecting`));
    const exchange = this.#exchange;
    if (!exchange || this.#answerDone) return;
    if (this.#head?.framing === "close" && this.#reading !== Reading.Head && !this.#error) {
      // Read until close: a clean close is the body's end (a reset is a body cut short, below).
      this.#reusable = false;
      this.#bodyEnded();
      this.#exchange = null;
      return;
    }
    if (this.#reading === Reading.Whole || this.#reading === Reading.Stream) {
      return this.#bodyFailed(failure("reset", `${why()} in the middle of the body`));
    }
    this.#exchange = null;
    if (exchange.settled) return;
    // Cut off before a whole head: the backend may have acted on the request, as with a reset.
    if (this.#gotBytes) return exchange.resolve(failure("reset", `${why()} in the middle of the answer's head`));
    if (this.reused && exchange.mayResend) {
      exchange.resending();
      return this.owner.resend(exchange);
    }
    exchange.resolve(failure("reset", why()));
  }
}
