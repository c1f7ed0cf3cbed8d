import type { BackendSpec } from "../config/backend-url.ts";
import { type HealthState, initialHealth } from "./health.ts";
import { CLEAN_OUTLIER, type OutlierState } from "./outlier.ts";

/** One server lb may send requests to, with its live state. */
export interface Backend {
  /** The origin requests go to, e.g. `http://10.0.0.5:8080`. */
  readonly url: string;
  /** Short name for logs: the URL's host and port. */
  readonly name: string;
  /** Configured share of traffic relative to the others. */
  readonly weight: number;
  health: HealthState;
  outlier: OutlierState;
  /** Taken out of rotation by outlier detection until its ejection ends. */
  ejected: boolean;
  /** Requests sent to it and not yet finished. */
  inflight: number;
}

export function createBackend({ url, weight }: BackendSpec, now: number): Backend {
  return { url, name: new URL(url).host, weight, health: initialHealth(now), outlier: CLEAN_OUTLIER, ejected: false, inflight: 0 };
}

/** In rotation: healthy by its checks and not ejected for errors. */
export function isAvailable(backend: Backend): boolean {
  return backend.health.status === "healthy" && !backend.ejected;
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
