/**
 * Bounds concurrent upstream requests. Bun's fetch keeps at most 64 idle sockets per process; past that,
 * connections churn into TIME_WAIT and throughput collapses, so requests beyond the bound wait here in FIFO order
 * instead (the same idea as HAProxy's server maxconn + queue).
 */
import { Waitlist } from "./waitlist.ts";

export class Limiter {
  #active = 0;
  readonly #waiting = new Waitlist();

  constructor(readonly max: number) {}

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting.size;
  }

  /** Takes a slot if one is free now; the common case, with no promise or timer. */
  tryAcquire(): boolean {
    if (this.#active >= this.max) return false;
    this.#active++;
    return true;
  }

  /**
   * Resolves when a slot is held; rejects as Waitlist.wait does (signal aborted, or timed out).
   * Callers must call release() exactly once for each acquire that resolved.
   */
  async acquire(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (!this.tryAcquire()) await this.#waiting.wait(signal, timeoutMs);
  }

  release(): void {
    // A woken waiter inherits the slot, so #active stays as it is.
    if (!this.#waiting.wakeOne()) this.#active--;
  }
}
