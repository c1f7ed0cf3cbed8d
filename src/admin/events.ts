/** The recent state changes of the pool, newest last, for the dashboard's log (bounded: the last 100). */
export interface PoolEventRecord {
  time: string;
  backend: string;
  /** The state word after the change, for the colour. */
  state: string;
  message: string;
}

const KEEP = 100;

export class EventLog {
  readonly #events: PoolEventRecord[] = [];

  add(backend: string, state: string, message: string): void {
    this.#events.push({ time: new Date().toISOString(), backend, state, message });
    if (this.#events.length > KEEP) this.#events.shift();
  }

  recent(): readonly PoolEventRecord[] {
    return this.#events;
  }
}
