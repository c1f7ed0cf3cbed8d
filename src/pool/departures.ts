/**
 * The end of a backend's life in a process. What is kept per address (its metrics) outlives the backend's time in any
 * one pool: a reload may move it to another pool, and may remove it from the first before the second adds it. So
 * the address is gone only when no pool has it once the change that let it go is complete, and that is decided here,
 * once, for whoever keeps state by address.
 */

/** A pool, as far as this question goes. */
interface Members {
  find(url: string): unknown;
}

export class Departures {
  /** Addresses a pool let go in the change under way, looked at once it is complete (a microtask later). */
  readonly #leaving = new Set<string>();

  constructor(
    /** Every pool whose backends are alive: those in use, and those a reload dropped whose requests still finish. */
    private readonly pools: () => Iterable<Members>,
    /** What ends with an address, told once per departure. */
    private readonly gone: (url: string) => void,
  ) {}

  /** Whether a pool has this address now: the one answer to "does lb still serve it?". */
  serves(url: string): boolean {
    for (const pool of this.pools()) if (pool.find(url) !== undefined) return true;
    return false;
  }

  /** A pool let this address go: it is gone at the end of this turn unless a pool has it then. */
  left(url: string): void {
    if (this.#leaving.size === 0) queueMicrotask(() => this.#decide());
    this.#leaving.add(url);
  }

  #decide(): void {
    const leaving = [...this.#leaving];
    this.#leaving.clear();
    for (const url of leaving) if (!this.serves(url)) this.gone(url);
  }
}
