/**
 * Decoding a chunked body (RFC 9112 §7.1) as its bytes arrive, strictly: a size that is not hex, a missing CRLF after
 * a chunk's data or an overlong line is an error, not a guess. Trailers are read and dropped (lb does not promise
 * them to clients). Pure: bytes in, body pieces out.
 */

/** Longest size line (with extensions) or trailer line; HAProxy and nginx refuse far shorter ones than this. */
const LINE_LIMIT = 4096;
/** Most trailer bytes accepted before the body is refused. */
const TRAILER_LIMIT = 16 * 1024;
const CR = 13;
const LF = 10;
const HEX_SIZE = /^[0-9A-Fa-f]+$/;

const enum State {
  Size,
  Data,
  DataEnd,
  Trailers,
  Done,
}

export class ChunkedDecoder {
  #state = State.Size;
  /** Data bytes left in the current chunk. */
  #left = 0;
  /** The line read so far (latin1), across pieces. */
  #line = "";
  #trailerBytes = 0;
  /** Why the body was refused; set when feed returns -1. */
  error = "";

  get done(): boolean {
    return this.#state === State.Done;
  }

  /**
   * Consumes `bytes`, adding each run of body data to `pieces` (views into `bytes`, not copies). Returns how many
   * bytes belonged to the body (less than all of them only once it is done), or -1 when the body is malformed.
   */
  feed(bytes: Uint8Array, pieces: Uint8Array[]): number {
    let at = 0;
    while (at < bytes.length) {
      switch (this.#state) {
        case State.Data: {
          const take = Math.min(this.#left, bytes.length - at);
          pieces.push(bytes.subarray(at, at + take));
          at += take;
          this.#left -= take;
          if (this.#left === 0) this.#state = State.DataEnd;
          break;
        }
        case State.Done:
          return at;
        default: {
          const eol = bytes.indexOf(LF, at);
          const end = eol === -1 ? bytes.length : eol + 1;
          this.#line += latin1(bytes, at, end);
          at = end;
          if (this.#line.length > LINE_LIMIT) return this.#fail("chunk line too long");
          if (eol === -1) break;
          if (this.#line.length < 2 || this.#line.charCodeAt(this.#line.length - 2) !== CR) return this.#fail("bare LF in chunked body");
          const line = this.#line.slice(0, -2);
          this.#line = "";
          const malformed = this.#onLine(line);
          if (malformed) return this.#fail(malformed);
        }
      }
    }
    return at;
  }

  /** One complete line (CRLF removed) in a line-reading state; the reason when it is malformed. */
  #onLine(line: string): string | null {
    if (this.#state === State.DataEnd) {
      if (line !== "") return "chunk data longer than its size";
      this.#state = State.Size;
      return null;
    }
    if (this.#state === State.Trailers) {
      this.#trailerBytes += line.length + 2;
      if (this.#trailerBytes > TRAILER_LIMIT) return "trailers too large";
      if (line === "") this.#state = State.Done;
      else if (/^[ \t]/.test(line) || line.indexOf(":") <= 0) return "bad trailer line";
      return null;
    }
    // A size line: hex digits, then optional extensions after a semicolon (ignored).
    const semicolon = line.indexOf(";");
    const digits = (semicolon === -1 ? line : line.slice(0, semicolon)).replace(/[ \t]+$/, "");
    if (!HEX_SIZE.test(digits)) return `bad chunk size "${JSON.stringify(digits.slice(0, 20)).slice(1, -1)}"`;
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) return "control character in chunk extension";
    this.#left = parseInt(digits, 16);
    // Past 2^53 a size no longer fits a number exactly: refused, never rounded (HAProxy refuses past 2^63 - 1).
    if (this.#left > Number.MAX_SAFE_INTEGER) return `chunk size ${digits.slice(0, 20)} too large`;
    this.#state = this.#left === 0 ? State.Trailers : State.Data;
    return null;
  }

  #fail(reason: string): -1 {
    this.error = reason;
    return -1;
  }
}

/**
 * The pieces one `feed` added (views into the bytes it was given, in order) as one view: each is moved down to follow
 * the one before, over the chunk framing between them, which has been read. No new memory: those bytes are changed.
 */
export function joinInPlace(pieces: readonly Uint8Array[]): Uint8Array {
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  if (first === last) return first;
  const span = new Uint8Array(first.buffer, first.byteOffset, last.byteOffset + last.byteLength - first.byteOffset);
  let length = first.byteLength;
  for (const piece of pieces.slice(1)) {
    const from = piece.byteOffset - first.byteOffset;
    span.copyWithin(length, from, from + piece.byteLength);
    length += piece.byteLength;
  }
  return span.subarray(0, length);
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString("latin1");
}
