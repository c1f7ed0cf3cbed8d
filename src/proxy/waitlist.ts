/** A bounded first-in, first-out list of requests waiting for something to free up (a slot, a backend with room). */

export class QueueFull extends Error {
  override name = "QueueFull";
}

export class WaitTimedOut extends Error {
  override name = "WaitTimedOut";
}

export class Waitlist {
  // A Set keeps insertion order and lets a waiter that gave up leave in O(1).
  readonly #waiters = new Set<() => void>();

  constructor(public maxSize = Number.POSITIVE_INFINITY) {}

  get size(): number {
    return this.#waiters.size;
  }

  /**
   * Resolves when woken. Rejects with QueueFull at once when the list is full, with WaitTimedOut after `timeoutMs`,
   * or with the signal's reason when it aborts (the client left). One timer, no composed AbortSignal: this runs for
   * every queued request.
   */
  wait(signal: AbortSignal, timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.#waiters.size >= this.maxSize) return Promise.reject(new QueueFull("the queue is full"));
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const leave = (error: unknown) => {
        this.#waiters.delete(wake);
        signal.removeEventListener("abort", onAbort);
        clearTimeout(timer);
        reject(error);
      };
      const onAbort = () => leave(signal.reason);
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => leave(new WaitTimedOut("waited too long")), timeoutMs) : undefined;
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        clearTimeout(timer);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(wake);
    });
  }

  /** Wakes the oldest waiter; false when nobody was waiting. */
  wakeOne(): boolean {
    const next = this.#waiters.values().next();
    if (next.done) return false;
    this.#waiters.delete(next.value);
    next.value();
    return true;
  }
}
