/**
 * One backend's idle connections, least recently released first, as a list threaded through the connections
 * themselves: adding one at the end and taking one out anywhere are a few field writes. A Map entry made and dropped
 * per request (as this was) costs Bun's hash tables far more than the work it records.
 */

/** The fields a connection carries for the list; only IdleList writes them. */
export interface IdleLinks<T> {
  /** Since when it has been idle (performance.now); -1 while it is not in the list. */
  idleSince: number;
  idlePrevious: T | null;
  idleNext: T | null;
}

export class IdleList<T extends IdleLinks<T>> {
  #first: T | null = null;
  #last: T | null = null;
  size = 0;

  /** Adds `item` at the end, idle since `now`. */
  add(item: T, now: number): void {
    item.idleSince = now;
    item.idlePrevious = this.#last;
    item.idleNext = null;
    if (this.#last) this.#last.idleNext = item;
    else this.#first = item;
    this.#last = item;
    this.size++;
  }

  /** Takes `item` out; false when it was not in the list. */
  remove(item: T): boolean {
    if (item.idleSince < 0) return false;
    const { idlePrevious: previous, idleNext: next } = item;
    if (previous) previous.idleNext = next;
    else this.#first = next;
    if (next) next.idlePrevious = previous;
    else this.#last = previous;
    item.idleSince = -1;
    item.idlePrevious = item.idleNext = null;
    this.size--;
    return true;
  }

  /** The least recently added. */
  get oldest(): T | null {
    return this.#first;
  }

  /** The items, oldest first, as an array: safe to take them out while going through it. */
  items(): T[] {
    const items: T[] = [];
    for (let item = this.#first; item; item = item.idleNext) items.push(item);
    return items;
  }
}
