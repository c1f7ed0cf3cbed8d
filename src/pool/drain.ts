/**
 * Draining: a backend takes no new requests, its in-flight ones finish (within a deadline), then it leaves. Handed
 * over, it first serves on until another backend is in rotation (make-before-break).
 */
import { type Backend, isAvailable } from "./backend.ts";
import type { Pool } from "./pool.ts";

const POLL_MS = 20;

/**
 * Marks the backend draining, waits until it has nothing in flight or the deadline passes, then removes it —
 * unless it was brought back meanwhile (a reload or DNS listed it again, or it was enabled): then it stays.
 * Resolves to the requests still in flight at removal (0 when it drained cleanly; those still finish), or null
 * when the drain was called off.
 */
export async function drainAndRemove(pool: Pool, backend: Backend, timeoutMs: number): Promise<number | null> {
  pool.setAdminState(backend, "draining");
  const deadline = Date.now() + timeoutMs;
  while (backend.inflight > 0 && Date.now() < deadline && backend.admin === "draining") await Bun.sleep(POLL_MS);
  if (backend.admin !== "draining") return null;
  pool.remove(backend);
  return backend.inflight;
}

/**
 * How a hand-over ended: the backend drained out (a backend that stays came into rotation, or it fell out of rotation
 * itself), it left at the deadline while still the pool's only choice, or it was called off and stays.
 */
export type HandOver = "drained" | "timed out" | "called off";

/**
 * Make-before-break: while the backend is in rotation and no backend that stays is (`replaced()` is false: the new
 * ones still wait for their first check), it keeps taking requests, so a change that swaps the whole set never leaves
 * the pool with nothing to send to. Then it drains out as above. One deadline covers both; `signal` calls it off.
 */
async function handOverAndRemove(
  pool: Pool,
  backend: Backend,
  options: { timeoutMs: number; replaced: () => boolean; signal: AbortSignal },
): Promise<HandOver> {
  const { replaced, signal } = options;
  const deadline = Date.now() + options.timeoutMs;
  const waiting = () => isAvailable(backend) && !replaced();
  while (!signal.aborted && waiting() && Date.now() < deadline) await Bun.sleep(POLL_MS);
  if (signal.aborted) return "called off";
  const timedOut = waiting();
  const left = await drainAndRemove(pool, backend, deadline - Date.now());
  if (left === null) return "called off";
  return timedOut ? "timed out" : "drained";
}

/**
 * One pool's backends on their way out by hand-over. Whatever drops backends (the config file, DNS) hands them over
 * here, so a backend one of them dropped is no successor to another's.
 */
export class HandOvers {
  /** Each leaving backend's hand-over, aborted when it is called off. */
  readonly #leaving = new Map<Backend, AbortController>();

  constructor(private readonly pool: Pool) {}

  /** Whether a backend that is not on its way out is in rotation. */
  hasSuccessor(): boolean {
    return this.pool.available().some((backend) => !this.#leaving.has(backend));
  }

  isLeaving(backend: Backend): boolean {
    return this.#leaving.has(backend);
  }

  /**
   * Hands these backends over (all marked before any looks for a successor: a dropped backend is none to another),
   * each within `timeoutMs`, and tells `ended` how each one's ended.
   */
  start(backends: readonly Backend[], timeoutMs: number, ended: (backend: Backend, how: HandOver) => void): void {
    for (const backend of backends) {
      this.#leaving.get(backend)?.abort();
      this.#leaving.set(backend, new AbortController());
    }
    for (const backend of backends) void this.#handOver(backend, timeoutMs).then((how) => ended(backend, how));
  }

  async #handOver(backend: Backend, timeoutMs: number): Promise<HandOver> {
    const handOver = this.#leaving.get(backend)!;
    const how = await handOverAndRemove(this.pool, backend, { timeoutMs, replaced: () => this.hasSuccessor(), signal: handOver.signal });
    if (this.#leaving.get(backend) === handOver) this.#leaving.delete(backend);
    return how;
  }

  /** The backend was listed again: its hand-over, or the drain it led to, is called off, and it stays. */
  callOff(backend: Backend): void {
    const handOver = this.#leaving.get(backend);
    if (!handOver) return;
    handOver.abort();
    this.#leaving.delete(backend);
    if (backend.admin === "draining") this.pool.setAdminState(backend, "active");
  }
}
