/**
 * The set of backends and their health. It knows nothing of HTTP: it is told check results, connect failures and
 * request outcomes, and reports what changed through a listener, which is where logging happens.
 */
import type { BackendSpec } from "../config/backend-url.ts";
import { type AdminState, type Backend, backendName, createBackend, describeState, isAvailable } from "./backend.ts";
import { type HealthRules, type HealthState, type Observation, DEFAULT_RULES, markDown, observe } from "./health.ts";
import { type OutlierRules, mayEject, recordOutcome } from "./outlier.ts";

export type PoolEvent =
  | { type: "health"; backend: Backend; from: HealthState; to: HealthState }
  | { type: "ejected"; backend: Backend; forMs: number }
  | { type: "ejection-refused"; backend: Backend }
  | { type: "returned"; backend: Backend }
  | { type: "admin"; backend: Backend; state: AdminState }
  | { type: "weight"; backend: Backend; weight: number }
  | { type: "added"; backend: Backend }
  | { type: "removed"; backend: Backend };

export const NO_EJECTION: OutlierRules = { consecutiveErrors: 0, baseEjectionMs: 30_000, maxEjectedPercent: 0 };

export interface PoolRules {
  health: HealthRules;
  outlier: OutlierRules;
}

export interface PoolOptions extends Partial<PoolRules> {
  listener?: (event: PoolEvent) => void;
  clock?: () => number;
}

/** A change an operator asked for that the pool cannot make (the admin API answers 409). */
export class PoolConflict extends Error {
  override name = "PoolConflict";
}

export class Pool {
  #backends: Backend[];
  #health: HealthRules;
  #outlier: OutlierRules;
  readonly #listener: (event: PoolEvent) => void;
  readonly #clock: () => number;
  /** The state each backend was last reported in, to tell when it changes. */
  readonly #shownState = new WeakMap<Backend, string>();
  #available: Backend[] = [];
  readonly #ejectionTimers = new Map<Backend, ReturnType<typeof setTimeout>>();
  /** Backends taken out of the pool: their late results (requests still finishing) change nothing. */
  readonly #removed = new WeakSet<Backend>();

  constructor(specs: readonly BackendSpec[], options: PoolOptions = {}) {
    this.#health = options.health ?? DEFAULT_RULES;
    this.#outlier = options.outlier ?? NO_EJECTION;
    this.#listener = options.listener ?? (() => {});
    this.#clock = options.clock ?? Date.now;
    const now = this.#clock();
    this.#backends = specs.map((spec) => this.#create(spec, now));
  }

  /** New rules apply from the next check or outcome; current states are kept. */
  reconfigure(rules: PoolRules): void {
    this.#health = rules.health;
    this.#outlier = rules.outlier;
  }

  /** Every backend, in configured order (added ones last), whatever its state. */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  /** A backend by its name (host:port) or its URL. */
  find(idOrUrl: string): Backend | undefined {
    return this.#backends.find((b) => b.name === idOrUrl || b.url === idOrUrl);
  }

  /** Adds a backend; it takes traffic once its first health check passes. */
  add(spec: BackendSpec): Backend {
    const name = backendName(spec.url);
    if (this.#backends.some((b) => b.url === spec.url || b.name === name)) throw new PoolConflict(`${spec.url} is already in the pool`);
    const backend = this.#create(spec, this.#clock());
    this.#backends = [...this.#backends, backend];
    this.#emit({ type: "added", backend });
    return backend;
  }

  /** Takes a backend out of the pool at once; requests already sent to it still finish. */
  remove(backend: Backend): void {
    if (!this.#backends.includes(backend)) return;
    this.#backends = this.#backends.filter((b) => b !== backend);
    this.#removed.add(backend);
    clearTimeout(this.#ejectionTimers.get(backend));
    this.#ejectionTimers.delete(backend);
    this.#rebuild();
    this.#emit({ type: "removed", backend });
  }

  setAdminState(backend: Backend, state: AdminState): void {
    if (backend.admin === state) return;
    backend.admin = state;
    this.#rebuild();
    this.#emit({ type: "admin", backend, state });
  }

  /** A new weight, told to the listeners (workers follow the primary's weights through them). */
  setWeight(backend: Backend, weight: number): void {
    if (backend.weight === weight) return;
    backend.weight = weight;
    this.#rebuild(); // a new list: policies weigh its backends again (balance/policy.ts EvenWeights)
    this.#emit({ type: "weight", backend, weight });
  }

  /** Backends in rotation, in configured order; rebuilt on each change, not on each request. */
  available(): readonly Backend[] {
    return this.#available;
  }

  /**
   * A check's result. A pass from a check that began before the backend was last marked down is stale (the
   * failure is newer news) and is ignored, so a dead backend is not let back by a check that raced its death.
   */
  recordCheck(backend: Backend, result: Observation, startedAt = Number.POSITIVE_INFINITY): void {
    if (this.#removed.has(backend)) return;
    if (result.ok && backend.health.status === "unhealthy" && startedAt < backend.health.since) return;
    const now = this.#clock();
    backend.lastCheck = { ...result, at: now };
    this.#setHealth(backend, observe(backend.health, result, this.#health, now));
  }

  recordConnectFailure(backend: Backend, reason: string): void {
    if (this.#removed.has(backend)) return;
    this.#setHealth(backend, markDown(backend.health, reason, this.#clock()));
  }

  /** Health decided elsewhere: a worker takes the state its primary's checks arrived at. */
  adoptHealth(backend: Backend, health: HealthState): void {
    if (this.#removed.has(backend)) return;
    this.#setHealth(backend, health);
  }

  /** An answered request (isError: a 5xx or gateway error); enough errors in a row eject the backend. */
  recordOutcome(backend: Backend, isError: boolean): void {
    // A backend marked down is out already; the failures of requests it held when it died are no news, and counting
    // them would eject it on top, keeping it out long after it is back.
    if (this.#removed.has(backend) || backend.health.status === "unhealthy") return;
    if (!isError && backend.outlier.consecutiveErrors === 0) return; // a success with no streak to end: nothing changes
    const now = this.#clock();
    const { state, ejectForMs } = recordOutcome(backend.outlier, isError, this.#outlier, now);
    backend.outlier = state;
    if (ejectForMs === 0 || backend.ejected) return;
    const ejectedNow = this.#backends.filter((b) => b.ejected).length;
    // Never the last backend in rotation: a failing backend beats none at all.
    if (!mayEject(ejectedNow, this.#backends.length, this.#outlier) || this.#available.length <= 1) {
      this.#emit({ type: "ejection-refused", backend });
      return;
    }
    backend.ejected = true;
    this.#rebuild();
    this.#emit({ type: "ejected", backend, forMs: ejectForMs });
    this.#ejectionTimers.set(backend, setTimeout(() => this.#endEjection(backend), ejectForMs));
  }

  #endEjection(backend: Backend): void {
    clearTimeout(this.#ejectionTimers.get(backend));
    this.#ejectionTimers.delete(backend);
    backend.ejected = false;
    backend.outlier = { ...backend.outlier, returnedAt: this.#clock() };
    this.#rebuild();
    this.#emit({ type: "returned", backend });
  }

  /** Cancels pending returns from ejection (on shutdown). */
  close(): void {
    for (const timer of this.#ejectionTimers.values()) clearTimeout(timer);
    this.#ejectionTimers.clear();
  }

  #setHealth(backend: Backend, next: HealthState): void {
    const from = backend.health;
    backend.health = next;
    if (next.status === from.status) return;
    this.#rebuild();
    this.#emit({ type: "health", backend, from, to: next });
    // Back from down (a restarted process, say): the errors that ejected it were its dying, not how it answers now.
    if (from.status === "unhealthy" && next.status === "healthy" && backend.ejected) this.#endEjection(backend);
  }

  #create(spec: BackendSpec, now: number): Backend {
    const backend = createBackend(spec, now);
    this.#shownState.set(backend, describeState(backend));
    return backend;
  }

  /** Reports an event; first stamps the backend's stateSince when the state operators see has changed with it. */
  #emit(event: PoolEvent): void {
    const { backend } = event;
    const state = describeState(backend);
    if (this.#shownState.get(backend) !== state) {
      backend.stateSince = this.#clock();
      this.#shownState.set(backend, state);
    }
    this.#listener(event);
  }

  #rebuild(): void {
    this.#available = this.#backends.filter(isAvailable);
  }
}
