/**
 * A set of objects that each keep their own place in it (`setIndex`): adding one is a push, and one leaves by the last
 * taking its place. For the entries every request makes and drops: a Set did the same at a cost of 11 % of lb's CPU
 * per request (its hash table's upkeep in Bun), this at none measurable. An object is in one such set at a time.
 */
export interface SetMember {
  /** Its place in the set it is in; -1 when in none. Only SwapSet writes it. */
  setIndex: number;
}

export class SwapSet<T extends SetMember> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(item: T): void {
    if (item.setIndex >= 0) return; // in it already
    item.setIndex = this.#items.push(item) - 1;
  }

  delete(item: T): void {
    const at = item.setIndex;
    if (at < 0) return;
    const last = this.#items.pop()!;
    if (last !== item) this.#items[(last.setIndex = at)] = last;
    item.setIndex = -1;
  }

  /** The members now, as an array: safe to take them out while going through it. */
  members(): T[] {
    return this.#items.slice();
  }
}
