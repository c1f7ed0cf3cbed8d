/** When a failed attempt may be sent to another backend. */
import type { Backend } from "../pool/backend.ts";
import type { FailureKind } from "../upstream/failure.ts";

import { isIdempotent } from "../http/h1/request-head.ts";

/**
 * A connect failure is always safe to retry: the backend never saw the request. A reset before any response byte
 * is retried only for idempotent methods, since the backend may have acted on it. Timeouts and malformed answers
 * are not retried: the backend did receive the request. A streamed body that was already handed to one backend
 * cannot be sent again at all.
 */
export function mayRetry(kind: FailureKind, method: string, bodyReplayable: boolean): boolean {
  if (!bodyReplayable) return false;
  if (kind === "connect") return true;
  return kind === "reset" && isIdempotent(method);
}

/** Envoy's retry budget floor: this many retries may always be in flight, however little traffic there is. */
export const MIN_RETRIES_IN_FLIGHT = 3;

/**
 * Retry budget: one more retry may start while retries in flight stay under `budgetPercent` of requests in flight
 * (Envoy's default 20%, at least 3), so a failing pool is not hammered by retries on top of its load.
 */
export function retryBudgetAllows(requestsInFlight: number, retriesInFlight: number, budgetPercent: number): boolean {
  return retriesInFlight < Math.max(MIN_RETRIES_IN_FLIGHT, (requestsInFlight * budgetPercent) / 100);
}

/** Resets from one backend this close together mean it died (a stale keep-alive socket resets one request). */
const RESET_BURST_MS = 100;

/** The latest reset from each backend and how many came close together before it. */
export class ResetBursts {
  readonly #last = new WeakMap<Backend, { at: number; count: number }>();

  /** Counts a reset from `backend` at `now`: how many came within RESET_BURST_MS of each other, this one included. */
  count(backend: Backend, now: number): number {
    const last = this.#last.get(backend);
    const count = last && now - last.at < RESET_BURST_MS ? last.count + 1 : 1;
    this.#last.set(backend, { at: now, count });
    return count;
  }
}
