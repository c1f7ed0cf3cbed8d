/**
 * A backend's response body as the connection hands it on: kept whole while it is small and arriving fast (so the
 * client gets a Content-Length), or passed on as a stream that reads the backend only while the client keeps up.
 */

/** A body up to this size that has all arrived is handed over whole (so the client gets a Content-Length). */
export const WHOLE_BODY_LIMIT_BYTES = 1024 * 1024;

/** A body collected whole: into one buffer when its length is known, else as pieces. */
export class WholeBody {
  #whole: Uint8Array | null;
  #filled = 0;
  #pieces: Uint8Array[] = [];
  #size = 0;

  /** `length`: the body's Content-Length, null when it is chunked or ends with the connection. */
  constructor(length: number | null) {
    this.#whole = length === null ? null : new Uint8Array(length);
  }

  /** Keeps `piece`; false once the body has grown past WHOLE_BODY_LIMIT_BYTES (it must go as a stream). */
  add(piece: Uint8Array): boolean {
    if (this.#whole) {
      this.#whole.set(piece, this.#filled);
      this.#filled += piece.byteLength;
      return true;
    }
    this.#pieces.push(piece);
    this.#size += piece.byteLength;
    return this.#size <= WHOLE_BODY_LIMIT_BYTES;
  }

  /** What has arrived so far, in order (to begin a stream with). */
  kept(): Uint8Array[] {
    return this.#whole ? [this.#whole.subarray(0, this.#filled)] : this.#pieces;
  }

  /** The whole body, once it has all arrived. */
  bytes(): Uint8Array {
    return this.#whole ?? (this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#size));
  }
}

/** What a streamed body needs from the connection that feeds it. */
export interface StreamFeed {
  /** Read the backend (Bun asked for more), or stop (a piece waits for the client). */
  reading(on: boolean): void;
  /** A piece had to wait in the queue: the client is behind. */
  behind(): void;
  /** The reader (the client) went away: the rest has nowhere to go. */
  cancelled(): void;
}

/** A body passed on as it arrives, one piece at a time: the backend is read only while Bun asks for more. */
export class ResponseStream {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #bytes = 0;
  /** When a byte last moved (performance.now). */
  #movedAt = performance.now();
  /** Ended or failed: Bun may still call pull or cancel, which then mean nothing. */
  #over = false;

  constructor(private readonly feed: StreamFeed) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (this.#controller = controller),
        pull: () => {
          if (!this.#over) this.feed.reading(true);
        },
        cancel: () => {
          if (this.#over) return;
          this.#over = true;
          this.feed.cancelled();
        },
      },
      // 0: pull means a read is waiting (Bun wrote the last piece to the client), not merely that the queue is short.
      { highWaterMark: 0 },
    );
  }

  /** Body bytes passed on so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** How long no byte has moved, in ms. */
  stalledFor(now: number): number {
    return now - this.#movedAt;
  }

  push(piece: Uint8Array): void {
    if (piece.byteLength === 0) return;
    this.#bytes += piece.byteLength;
    this.#movedAt = performance.now();
    this.#controller.enqueue(piece);
    if ((this.#controller.desiredSize ?? 0) < 0) this.feed.behind();
    this.feed.reading(false);
  }

  end(): void {
    this.#over = true;
    this.#controller.close();
  }

  fail(reason: string): void {
    this.#over = true;
    this.#controller.error(new Error(reason));
  }
}
