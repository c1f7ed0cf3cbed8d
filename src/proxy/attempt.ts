/** One try of a request on one backend, from sending it to the last byte of its answer. */
import type { Backend } from "../pool/backend.ts";
import type { AttemptSpan } from "../tracing/spans.ts";
import type { Failure } from "../upstream/failure.ts";

/** How an attempt ended, for whoever keeps the books. */
export interface AttemptEnd {
  /** The status passed to the client; 0 when the attempt ended without an answer for the client. */
  status: number;
  /** Body bytes passed to the client. */
  bytes: number;
  /** Set when an answer already under way was cut: the backend broke it off or went silent, or the client stalled. */
  failure?: Failure;
}

/**
 * Holds the backend's in-flight count from the moment the request goes out until the try is over, and gives it back
 * exactly once: at a failure, or when the answer's body has ended (for a whole body, as it is handed over; for a
 * stream, at its last byte, a client that left, or the backend breaking it off).
 */
export class Attempt {
  readonly sent = performance.now();
  /** Its client span, when the trip is traced. */
  span: AttemptSpan | undefined = undefined;
  #status = 0;
  #bodyEnd: { bytes: number; failure?: Failure } | null = null;
  #over = false;

  constructor(
    readonly backend: Backend,
    private readonly onOver: (attempt: Attempt, end: AttemptEnd) => void,
  ) {
    backend.inflight++;
  }

  /** Over without an answer for the client: it failed, or the client left first. */
  failed(): void {
    this.#finish({ status: 0, bytes: 0 });
  }

  /** Its answer went to the client with `status`; `wholeBytes` when the body went with it whole. */
  responded(status: number, wholeBytes: number | null): void {
    this.#status = status;
    if (wholeBytes !== null) this.#bodyEnd = { bytes: wholeBytes };
    if (this.#bodyEnd) this.#finish({ status, ...this.#bodyEnd });
  }

  /** Its streamed body ended (it may end before responded() is called: a stream that arrived in one read). */
  bodyEnded(bytes: number, failure?: Failure): void {
    this.#bodyEnd = { bytes, failure };
    if (this.#status) this.#finish({ status: this.#status, bytes, failure });
  }

  #finish(end: AttemptEnd): void {
    if (this.#over) return;
    this.#over = true;
    this.backend.inflight--;
    this.onOver(this, end);
  }
}
