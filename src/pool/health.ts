/**
 * A backend's health as a small state machine with no I/O: it is fed check results and passive failures and says
 * whether the state flipped, so only flips are logged (as Pingora's observe_health does).
 */

export type HealthStatus = "unknown" | "healthy" | "unhealthy";

export interface HealthState {
  readonly status: HealthStatus;
  /** Consecutive passing checks, and consecutive failures (one of the two is always 0). */
  readonly passes: number;
  readonly failures: number;
  /** Why the last check or failure said what it said ("status 500", "connection refused"). */
  readonly reason: string;
  /** When the status last changed (ms since the epoch). */
  readonly since: number;
  /** Healthy again after being down (not merely up since startup): slow start applies. */
  readonly recovered: boolean;
  /** The last check failed with no answer at all (a frozen or unreachable backend), not with an error or a refusal. */
  readonly unanswered: boolean;
}

export interface HealthRules {
  /** Consecutive passes that bring an unhealthy backend up. */
  readonly rise: number;
  /** Consecutive failures that take a healthy backend down. */
  readonly fall: number;
}

export interface Observation {
  readonly ok: boolean;
  readonly reason: string;
  /** The check got no answer in time. */
  readonly unanswered?: boolean;
  /** lb could not run the check (out of file descriptors): it says nothing about the backend and changes nothing. */
  readonly inconclusive?: boolean;
}

export const DEFAULT_RULES: HealthRules = { rise: 1, fall: 1 };

export function initialHealth(now: number): HealthState {
  return { status: "unknown", passes: 0, failures: 0, reason: "not checked yet", since: now, recovered: false, unanswered: false };
}

/** The state after one active check. A backend never checked before takes the first result as it is. */
export function observe(state: HealthState, result: Observation, rules: HealthRules, now: number): HealthState {
  const passes = result.ok ? state.passes + 1 : 0;
  const failures = result.ok ? 0 : state.failures + 1;
  const status = nextStatus(state.status, passes, failures, rules);
  const unanswered = !result.ok && result.unanswered === true;
  if (status === state.status) return { ...state, passes, failures, reason: result.reason, unanswered };
  return { status, passes, failures, reason: result.reason, since: now, recovered: state.status === "unhealthy", unanswered };
}

function nextStatus(current: HealthStatus, passes: number, failures: number, rules: HealthRules): HealthStatus {
  if (current === "unknown") return passes > 0 ? "healthy" : "unhealthy";
  if (current === "healthy" && failures >= rules.fall) return "unhealthy";
  if (current === "unhealthy" && passes >= rules.rise) return "healthy";
  return current;
}

/**
 * A proxied request could not connect: the backend is down now, without waiting for `fall` checks, and needs
 * `rise` passing active checks to come back.
 */
export function markDown(state: HealthState, reason: string, now: number): HealthState {
  if (state.status === "unhealthy") return state;
  return { status: "unhealthy", passes: 0, failures: state.failures + 1, reason, since: now, recovered: false, unanswered: false };
}
