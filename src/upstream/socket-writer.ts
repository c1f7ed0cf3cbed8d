/**
 * Writing a request to a backend socket that takes only what it can: the rest is kept and written, in order, when the
 * socket drains, and a streamed body waits for that before it reads its next piece (TCP backpressure to the client).
 */
import { LAST_CHUNK, encodeChunk } from "../http/h1/request-head.ts";

export class SocketWriter {
  #unsent: Uint8Array | null = null;
  #drained: (() => void) | null = null;
  #closed = false;

  constructor(private readonly socket: { write(bytes: Uint8Array): number }) {}

  /** Bytes wait for the socket to take them. */
  get pending(): boolean {
    return this.#unsent !== null;
  }

  /** Writes or queues `bytes`; true when the socket took all of them. */
  write(bytes: Uint8Array): boolean {
    if (this.#unsent) {
      this.#unsent = Buffer.concat([this.#unsent, bytes]);
      return false;
    }
    const written = this.socket.write(bytes);
    if (written >= bytes.byteLength) return true;
    this.#unsent = bytes.subarray(Math.max(0, written));
    return false;
  }

  /** The socket can take more: writes what waited; true when all of it has gone now. */
  drain(): boolean {
    const unsent = this.#unsent;
    if (!unsent) return false;
    this.#unsent = null;
    if (!this.write(unsent)) return false;
    this.#wake();
    return true;
  }

  /** Resolves once the socket took every byte queued, or at once when it is closed (the writer then stops). */
  whenDrained(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#drained = resolve));
  }

  /** The socket closed: a body waiting to write stops at its next look. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const drained = this.#drained;
    this.#drained = null;
    drained?.();
  }
}

/**
 * Streams a request body: each piece (chunk-framed when `length` is -1) is written once the socket took the one
 * before. Returns false when `current()` turns false (the exchange ended, the connection closed) and the rest is not
 * wanted; throws when the body fails or is shorter than the length it declared.
 */
export async function pumpBody(
  writer: SocketWriter,
  body: ReadableStream<Uint8Array>,
  length: number,
  current: () => boolean,
  progressed: () => void,
): Promise<boolean> {
  const reader = body.getReader();
  const chunked = length < 0;
  let sent = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (!current()) {
        if (!done) reader.cancel().catch(() => {});
        return false;
      }
      if (done) break;
      if (value.byteLength === 0) continue;
      sent += value.byteLength;
      if (!writer.write(chunked ? encodeChunk(value) : value)) await writer.whenDrained();
      progressed(); // the backend is taking it
    }
    // A body shorter than the length it declared would leave the backend reading the next request as its rest.
    if (!chunked && sent !== length) throw new Error("the body ended before its declared length");
    if (chunked && !writer.write(LAST_CHUNK)) await writer.whenDrained();
    progressed();
    return true;
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  }
}
