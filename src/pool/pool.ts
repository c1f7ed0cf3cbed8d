/**
 * The set of backends and their health. It knows nothing of HTTP: it is told results and reports state changes
 * through a listener, which is where logging happens.
 */
import type { BackendSpec } from "../config/backend-url.ts";
import { type Backend, createBackend, isAvailable } from "./backend.ts";
import { type HealthRules, type HealthState, type Observation, DEFAULT_RULES, markDown, observe } from "./health.ts";

export interface HealthChange {
  backend: Backend;
  from: HealthState;
  to: HealthState;
}

export class Pool {
  readonly backends: readonly Backend[];
  #available: Backend[] = [];
  #listener: (change: HealthChange) => void;

  constructor(
    specs: readonly BackendSpec[],
    readonly rules: HealthRules = DEFAULT_RULES,
    listener: (change: HealthChange) => void = () => {},
    private readonly clock: () => number = Date.now,
  ) {
    const now = clock();
    this.backends = specs.map((spec) => createBackend(spec, now));
    this.#listener = listener;
  }

  /** Healthy backends in configured order; rebuilt on each health flip, not on each request. */
  available(): readonly Backend[] {
    return this.#available;
  }

  recordCheck(backend: Backend, result: Observation): void {
    this.#apply(backend, observe(backend.health, result, this.rules, this.clock()));
  }

  recordConnectFailure(backend: Backend, reason: string): void {
    this.#apply(backend, markDown(backend.health, reason, this.clock()));
  }

  #apply(backend: Backend, next: HealthState): void {
    const from = backend.health;
    backend.health = next;
    if (next.status === from.status) return;
    this.#available = this.backends.filter(isAvailable);
    this.#listener({ backend, from, to: next });
  }
}
