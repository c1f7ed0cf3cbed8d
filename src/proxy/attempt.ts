/** One try of a request on one backend, from sending it to the last byte of its answer. */
import type { Backend } from "../pool/backend.ts";
import type { AttemptSpan } from "../tracing/spans.ts";
import type { StreamWatcher, UpstreamCall } from "../upstream/client.ts";
import type { Failure } from "../upstream/failure.ts";
import type { Trip } from "./trip.ts";

/** Who keeps the books of a trip's attempts (the forwarder): told once when each is over. */
export interface AttemptBooks {
  /**
   * `status`: passed to the client, 0 when the attempt ended without an answer for the client; `bytes`: body bytes
   * passed on; `failure`: set when an answer already under way was cut (the backend broke it off or went silent, or
   * the client stalled).
   */
  attemptOver(attempt: Attempt, status: number, bytes: number, failure: Failure | undefined): void;
}

/**
 * Holds the backend's in-flight count from the moment the request goes out until the try is over, and gives it back
 * exactly once: at a failure, or when the answer's body has ended (for a whole body, as it is handed over; for a
 * stream, at its last byte, a client that left, or the backend breaking it off). Plain fields, no closure or end
 * object: one is made for every request.
 */
export class Attempt implements StreamWatcher {
  /** Its client span, when the trip is traced. */
  span: AttemptSpan | undefined = undefined;
  /** The request on its way to the backend (set once sent). */
  call: UpstreamCall | undefined = undefined;
  /** It follows a failed attempt of the same trip (it counts against the retry budget while in flight). */
  retry = false;
  #status = 0;
  /** The body's bytes once it has ended; -1 until then. */
  #bodyBytes = -1;
  #bodyFailure: Failure | undefined = undefined;
  #over = false;

  constructor(
    readonly backend: Backend,
    readonly trip: Trip,
    private readonly books: AttemptBooks,
  ) {
    backend.inflight++;
  }

  /** When it went to the backend (performance.now): the upstream call's own clock reading, not one more. */
  get sent(): number {
    return this.call!.sentAt;
  }

  /** Over without an answer for the client: it failed, or the client left first. */
  failed(): void {
    this.#finish(0, 0, undefined);
  }

  /** Its answer went to the client with `status`; `wholeBytes` when the body went with it whole. */
  responded(status: number, wholeBytes: number | null): void {
    this.#status = status;
    if (wholeBytes !== null) this.#bodyBytes = wholeBytes;
    if (this.#bodyBytes >= 0) this.#finish(status, this.#bodyBytes, this.#bodyFailure);
  }

  /** Its streamed body ended (it may end before responded() is called: a stream that arrived in one read). */
  streamEnded(bytes: number, failure?: Failure): void {
    this.#bodyBytes = bytes;
    this.#bodyFailure = failure;
    if (this.#status) this.#finish(this.#status, bytes, failure);
  }

  #finish(status: number, bytes: number, failure: Failure | undefined): void {
    if (this.#over) return;
    this.#over = true;
    this.backend.inflight--;
    this.books.attemptOver(this, status, bytes, failure);
  }
}
