/** Draining: a backend takes no new requests, its in-flight ones finish (within a deadline), then it leaves. */
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
 * Make-before-break, for a backend the config file dropped: while it is in rotation and no backend that stays is
 * (`replaced()` is false: the new ones still wait for their first check), it keeps taking requests, so a reload that
 * swaps the whole set never leaves the pool with nothing to send to. Then it drains out as above. One deadline covers
 * both; `signal` calls it off (the file lists the backend again).
 */
export async function handOverAndRemove(
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
