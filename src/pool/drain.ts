/** Draining: a backend takes no new requests, its in-flight ones finish (within a deadline), then it leaves. */
import type { Backend } from "./backend.ts";
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
