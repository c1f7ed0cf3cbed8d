/** A bounded first-in, first-out list of requests waiting for something to free up (a slot, a backend with room). */

export class QueueFull extends Error {
  override name = "QueueFull";
}

export class Waitlist {
  // A Set keeps insertion order and lets a waiter that gave up leave in O(1).
  readonly #waiters = new Set<() => void>();

  constructor(readonly maxSize = Number.POSITIVE_INFINITY) {}

  get size(): number {
    return this.#waiters.size;
  }

  /** Resolves when woken; rejects with QueueFull at once when the list is full, or with the signal's reason. */
  wait(signal: AbortSignal): Promise<void> {
    if (this.#waiters.size >= this.maxSize) return Promise.reject(new QueueFull("the queue is full"));
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.#waiters.delete(wake);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
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
