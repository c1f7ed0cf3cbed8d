import type { BackendSpec } from "../config/backend-url.ts";
import { type HealthState, initialHealth } from "./health.ts";
import { CLEAN_OUTLIER, type OutlierState } from "./outlier.ts";

/**
 * What an operator asked of a backend: take traffic, finish what it has and take no more (before removal or
 * maintenance), or stay out of rotation (disabled) until enabled again.
 */
export type AdminState = "active" | "draining" | "disabled";

export interface BackendStats {
  /** Attempts sent to it. */
  requests: number;
  /** Attempts that failed or got a 5xx. */
  errors: number;
  /** Attempts that were a retry of a request another backend failed. */
  retries: number;
}

export interface LastCheck {
  ok: boolean;
  reason: string;
  /** When it finished (ms since the epoch). */
  at: number;
}

/** One server lb may send requests to, with its live state. */
export interface Backend {
  /** The origin requests go to, e.g. `http://10.0.0.5:8080`. */
  readonly url: string;
  /** Short name for logs: the URL's host and port. */
  readonly name: string;
  /** Configured share of traffic relative to the others (a reload may change it). */
  weight: number;
  admin: AdminState;
  lastCheck: LastCheck | null;
  readonly stats: BackendStats;
  health: HealthState;
  outlier: OutlierState;
  /** Taken out of rotation by outlier detection until its ejection ends. */
  ejected: boolean;
  /** Requests sent to it and not yet finished. */
  inflight: number;
  /** When its describeState() last changed (ms since the epoch): a health change, an ejection, or an admin action. */
  stateSince: number;
}

export function createBackend({ url, weight }: BackendSpec, now: number): Backend {
  return {
    url,
    name: backendName(url),
    weight,
    admin: "active",
    lastCheck: null,
    stats: { requests: 0, errors: 0, retries: 0 },
    health: initialHealth(now),
    outlier: CLEAN_OUTLIER,
    ejected: false,
    inflight: 0,
    stateSince: now,
  };
}

/** A backend's id: host and port, the port always written (`example.com:80`, `[::1]:8080`). */
export function backendName(url: string): string {
  const { hostname, port, protocol } = new URL(url);
  return `${hostname}:${port || (protocol === "https:" ? "443" : "80")}`;
}

/** In rotation: healthy by its checks, not ejected for errors, and neither draining nor disabled. */
export function isAvailable(backend: Backend): boolean {
  return backend.health.status === "healthy" && !backend.ejected && backend.admin === "active";
}

/** One word for operators: the admin state when it is not active, else what the checks say. */
/** Every state describeState() can give. */
export const BACKEND_STATES = ["healthy", "unhealthy", "checking", "ejected", "draining", "disabled"] as const;

export function describeState(backend: Backend): (typeof BACKEND_STATES)[number] {
  if (backend.admin !== "active") return backend.admin;
  if (backend.ejected) return "ejected";
  return backend.health.status === "unknown" ? "checking" : backend.health.status;
}

/**
 * Its weight now: during slow start (the first `slowStartMs` after it came back from down) it ramps linearly from
 * 10% to its full weight, so a cold backend is not hit with its whole share at once.
 */
export function currentWeight(backend: Backend, slowStartMs: number, now: number): number {
  const { health } = backend;
  if (slowStartMs <= 0 || !health.recovered) return backend.weight;
  const ramp = (now - health.since) / slowStartMs;
  return ramp >= 1 ? backend.weight : backend.weight * Math.max(0.1, ramp);
}
