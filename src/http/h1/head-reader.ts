/**
 * Finding the end of a message head (the blank line after the header fields) in bytes that arrive in pieces. A head
 * that comes in many pieces is searched only where the new piece could complete it, and joined once. Pure: bytes in,
 * a head or nothing yet out.
 */

const HEAD_END = Buffer.from("\r\n\r\n");
const EMPTY = Buffer.alloc(0);

export type HeadRead =
  /** The head (latin1, one character per byte, without the blank line) and the bytes after it. */
  | { head: string; rest: Buffer }
  /** More bytes are needed. */
  | null
  /** The head is longer than the limit: refuse the message. */
  | "too large";

export class HeadReader {
  #pieces: Buffer[] = [];
  #size = 0;
  /** The last (up to) 3 bytes so far: where a head end split across pieces begins. */
  #tail: Buffer = EMPTY;

  constructor(private readonly limitBytes: number) {}

  /** Takes the next piece; a whole head resets the reader for the next message. */
  push(bytes: Buffer): HeadRead {
    let buffer = bytes;
    let end: number;
    if (this.#pieces.length === 0) end = bytes.indexOf(HEAD_END);
    else {
      const seam = Buffer.concat([this.#tail, bytes.subarray(0, 3)]);
      const across = seam.indexOf(HEAD_END);
      const within = across === -1 ? bytes.indexOf(HEAD_END) : -1;
      end = across !== -1 ? this.#size - this.#tail.length + across : within === -1 ? -1 : this.#size + within;
      if (end !== -1) buffer = Buffer.concat([...this.#pieces, bytes]);
    }
    if (end === -1) {
      this.#pieces.push(bytes);
      this.#size += bytes.length;
      const joined = Buffer.concat([this.#tail, bytes]);
      this.#tail = joined.subarray(Math.max(0, joined.length - 3));
      return this.#size > this.limitBytes ? "too large" : null;
    }
    this.reset();
    if (end > this.limitBytes) return "too large";
    return { head: buffer.toString("latin1", 0, end), rest: buffer.subarray(end + 4) };
  }

  /** Forgets a partial head. */
  reset(): void {
    this.#pieces = [];
    this.#size = 0;
    this.#tail = EMPTY;
  }
}
