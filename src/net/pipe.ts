/**
 * One direction of a byte relay between two sockets, with backpressure: what `to` does not take is kept, and `from`
 * is not read until `to` has drained it (TCP backpressure to the sender, nothing piles up in lb). A FIN from `from`
 * is passed on once everything before it is written.
 */

/** What a pipe needs of a Bun socket (either end). */
export interface PipeSocket {
  write(bytes: Uint8Array): number;
  pause(): void;
  resume(): void;
  /** With no argument, sends FIN (half-close): the peer may still answer. */
  shutdown(): void;
}

export class Pipe {
  /** Bytes `to` has not taken yet, in order. */
  #unsent: Uint8Array | null = null;
  #ended = false;
  /** Bytes read from `from`. */
  bytes = 0;

  constructor(
    private readonly from: PipeSocket,
    private readonly to: PipeSocket,
  ) {}

  /** Bytes read from `from`. */
  push(bytes: Uint8Array): void {
    this.bytes += bytes.length;
    if (this.#unsent) {
      // Read before the pause took hold: it queues behind what waits.
      this.#unsent = Buffer.concat([this.#unsent, bytes]);
      return;
    }
    this.#write(bytes);
  }

  /** `to` can take more: writes what waited, and reads `from` again once it has all gone. */
  drain(): void {
    const unsent = this.#unsent;
    if (!unsent) return;
    this.#unsent = null;
    if (!this.#write(unsent)) return;
    this.from.resume();
    if (this.#ended) this.to.shutdown();
  }

  /** `from` sent FIN: `to` gets one after the bytes before it. */
  end(): void {
    this.#ended = true;
    if (!this.#unsent) this.to.shutdown();
  }

  /** Whether bytes wait for `to`. */
  get pending(): boolean {
    return this.#unsent !== null;
  }

  /** Writes `bytes`; false (and `from` paused) when `to` took only part of them. */
  #write(bytes: Uint8Array): boolean {
    const written = this.to.write(bytes);
    if (written >= bytes.length) return true;
    this.#unsent = bytes.subarray(Math.max(0, written));
    this.from.pause();
    return false;
  }
}
