/**
 * Passive checks (outlier detection), pure: a backend that answers with N consecutive 5xx or gateway errors is
 * ejected for a while, longer each time it happens again (Envoy's rule), but never so many that the pool empties.
 */

export interface OutlierRules {
  /** Consecutive errors that eject; 0 turns ejection off. */
  readonly consecutiveErrors: number;
  /** The first ejection's length; each repeat doubles it, up to 10 times this. */
  readonly baseEjectionMs: number;
  /** Most of the pool, in percent, that may be ejected at once. */
  readonly maxEjectedPercent: number;
}

export interface OutlierState {
  readonly consecutiveErrors: number;
  /** Ejections so far in the current streak; reset once the backend stays clean for the longest ejection time. */
  readonly ejections: number;
  /** When it was last let back in (ms since the epoch). */
  readonly returnedAt: number;
}

export const CLEAN_OUTLIER: OutlierState = { consecutiveErrors: 0, ejections: 0, returnedAt: 0 };

export const MAX_EJECTION_FACTOR = 10;

export type Outcome = { state: OutlierState; ejectForMs: number };

/** The state after one answered request; ejectForMs > 0 asks for an ejection (if the pool allows one). */
export function recordOutcome(state: OutlierState, isError: boolean, rules: OutlierRules, now: number): Outcome {
  if (!isError) return { state: state.consecutiveErrors ? { ...state, consecutiveErrors: 0 } : state, ejectForMs: 0 };
  const consecutiveErrors = state.consecutiveErrors + 1;
  if (rules.consecutiveErrors === 0 || consecutiveErrors < rules.consecutiveErrors) {
    return { state: { ...state, consecutiveErrors }, ejectForMs: 0 };
  }
  const longest = rules.baseEjectionMs * MAX_EJECTION_FACTOR;
  const streak = state.returnedAt && now - state.returnedAt < longest ? state.ejections : 0;
  const ejectForMs = Math.min(rules.baseEjectionMs * 2 ** streak, longest);
  return { state: { consecutiveErrors: 0, ejections: streak + 1, returnedAt: state.returnedAt }, ejectForMs };
}

/** Whether one more ejection keeps the ejected share within the limit. */
export function mayEject(ejectedNow: number, poolSize: number, rules: OutlierRules): boolean {
  return ((ejectedNow + 1) * 100) / poolSize <= rules.maxEjectedPercent;
}
