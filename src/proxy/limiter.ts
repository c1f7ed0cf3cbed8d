/**
 * Bounds concurrent upstream requests. Bun's fetch keeps at most 64 idle sockets per process; past that,
 * connections churn into TIME_WAIT and throughput collapses, so requests beyond the bound wait here in FIFO order
 * instead (the same idea as HAProxy's server maxconn + queue).
 */
export class Limiter {
  #active = 0;
  // A Set keeps insertion order and lets a waiter that gave up leave the queue in O(1).
  readonly #waiters = new Set<() => void>();

  constructor(readonly max: number) {}

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiters.size;
  }

  /** Takes a slot if one is free now; the common case, with no promise or timer. */
  tryAcquire(): boolean {
    if (this.#active >= this.max) return false;
    this.#active++;
    return true;
  }

  /**
   * Resolves when a slot is held; rejects with the signal's reason if it aborts first.
   * Callers must call release() exactly once for each acquire that resolved.
   */
  acquire(signal: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(grant);
        reject(signal.reason);
      };
      const grant = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(grant);
    });
  }

  release(): void {
    const next = this.#waiters.values().next();
    if (next.done) {
      this.#active--;
      return;
    }
    // The slot passes straight to the oldest waiter; #active is unchanged.
    this.#waiters.delete(next.value);
    next.value();
  }
}
