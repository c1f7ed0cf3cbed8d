/**
 * One direction of a relayed connection: bytes read from one socket written to the other, with backpressure. Bun's
 * `write` takes what the kernel takes and keeps nothing; the rest waits here, the reading side is paused until the
 * writing side drains (so a slow reader holds at most a socket buffer and one read here, never a growing queue), and
 * a FIN from the source is passed on once everything before it was written.
 */

/** What a pipe needs of a socket: Bun's Socket has all of it. */
export interface PipeEnd {
  write(bytes: Uint8Array): number;
  shutdown(): void;
  pause(): void;
  resume(): void;
}

/**
 * Before the sink exists (a ClientHello being read, a backend still connecting), the source is paused once this much
 * waits: more than the largest ClientHello lb reads with its records (client-hello.ts), so reading one never stalls.
 */
const HELD_BEFORE_CONNECT = 96 * 1024;

export class Pipe {
  /** Bytes read and not yet taken by the sink, oldest first. */
  #waiting: Uint8Array[] = [];
  #waitingBytes = 0;
  #sink: PipeEnd | null = null;
  #paused = false;
  /** The source sent its FIN. */
  #ended = false;
  /** The FIN was passed on to the sink. */
  finished = false;
  /** Bytes read from the source. */
  bytes = 0;

  constructor(private readonly source: PipeEnd) {}

  /** What arrived before a sink was attached: the ClientHello that chose the backend, among others. */
  held(): Uint8Array {
    if (this.#waiting.length > 1) this.#waiting = [Buffer.concat(this.#waiting)];
    return this.#waiting[0] ?? new Uint8Array(0);
  }

  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  /** Bytes from the source. */
  push(bytes: Uint8Array): void {
    this.bytes += bytes.length;
    if (this.#sink && this.#waitingBytes === 0) {
      const taken = this.#sink.write(bytes);
      if (taken === bytes.length) return;
      this.#hold(bytes.subarray(Math.max(0, taken)));
      return this.#pause();
    }
    this.#hold(bytes);
    if (this.#sink || this.#waitingBytes >= HELD_BEFORE_CONNECT) this.#pause();
  }

  /** The sink is there (connected): what waits goes first, `prefix` (a PROXY header) before it. */
  attach(sink: PipeEnd, prefix?: Uint8Array): void {
    this.#sink = sink;
    if (prefix?.length) {
      this.#waiting.unshift(prefix);
      this.#waitingBytes += prefix.length;
    }
    this.drain();
  }

  /** The sink can take more: write what waits; when nothing does, read again and pass on a FIN that came. */
  drain(): void {
    const sink = this.#sink;
    if (!sink) return;
    while (this.#waiting.length) {
      const bytes = this.#waiting[0]!;
      const taken = Math.max(0, sink.write(bytes));
      this.#waitingBytes -= taken;
      if (taken < bytes.length) {
        this.#waiting[0] = bytes.subarray(taken);
        return;
      }
      this.#waiting.shift();
    }
    if (this.#paused) {
      this.#paused = false;
      this.source.resume();
    }
    this.#passEnd();
  }

  /** The source sent its FIN: passed on once what came before it is written. */
  end(): void {
    this.#ended = true;
    if (this.#waitingBytes === 0) this.#passEnd();
  }

  #passEnd(): void {
    if (!this.#ended || this.finished || !this.#sink) return;
    this.finished = true;
    this.#sink.shutdown();
  }

  #hold(bytes: Uint8Array): void {
    this.#waiting.push(bytes);
    this.#waitingBytes += bytes.length;
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.source.pause();
  }
}
