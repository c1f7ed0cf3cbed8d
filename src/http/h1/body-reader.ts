/**
 * Reading a message body by its framing (RFC 9112 §6.3): a Content-Length, chunked, or until the connection closes.
 * Each reader takes bytes as they arrive and hands on the body's pieces (views, not copies). Pure: no sockets.
 */
import { ChunkedDecoder } from "./chunked.ts";
import type { ResponseHead } from "./response-head.ts";

export interface BodyReader {
  /**
   * Consumes `bytes`, adding each run of body data to `pieces` (an array, not a callback: no closure per read).
   * Returns how many bytes belonged to the body (less than all of them only once it is done), or -1 when the body is
   * malformed (`error` says why).
   */
  feed(bytes: Uint8Array, pieces: Uint8Array[]): number;
  /** The body's end has been read (never, for a body that ends with the connection). */
  readonly done: boolean;
  readonly error: string;
}

/** A body of a known length. */
class LengthReader implements BodyReader {
  readonly error = "";

  constructor(private left: number) {}

  get done(): boolean {
    return this.left === 0;
  }

  feed(bytes: Uint8Array, pieces: Uint8Array[]): number {
    const take = Math.min(this.left, bytes.length);
    if (take > 0) pieces.push(take === bytes.length ? bytes : bytes.subarray(0, take));
    this.left -= take;
    return take;
  }
}

/** A body that ends when the connection does: every byte belongs to it. */
class UntilCloseReader implements BodyReader {
  readonly done = false;
  readonly error = "";

  feed(bytes: Uint8Array, pieces: Uint8Array[]): number {
    pieces.push(bytes);
    return bytes.length;
  }
}

/** The reader for the body after `head`; null when it has none. */
export function bodyReaderFor(head: ResponseHead): BodyReader | null {
  switch (head.framing) {
    case "none":
      return null;
    case "length":
      return new LengthReader(head.length);
    case "chunked":
      return new ChunkedDecoder();
    case "close":
      return new UntilCloseReader();
  }
}
