import type { BackendSpec } from "../config/backend-url.ts";
import { type HealthState, initialHealth } from "./health.ts";

/** One server lb may send requests to, with its live state. */
export interface Backend {
  /** The origin requests go to, e.g. `http://10.0.0.5:8080`. */
  readonly url: string;
  /** Short name for logs: the URL's host and port. */
  readonly name: string;
  /** Configured share of traffic relative to the others. */
  readonly weight: number;
  health: HealthState;
  /** Requests sent to it and not yet finished. */
  inflight: number;
}

export function createBackend({ url, weight }: BackendSpec, now: number): Backend {
  return { url, name: new URL(url).host, weight, health: initialHealth(now), inflight: 0 };
}

export function isAvailable(backend: Backend): boolean {
  return backend.health.status === "healthy";
}
