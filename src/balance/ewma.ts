import type { Backend } from "../pool/backend.ts";
import { twoChoices } from "./random.ts";
import { EvenWeights, type Policy, type WeightOf, configuredWeight } from "./policy.ts";

/** Finagle's penalty for an unmeasured backend that already has requests in flight. */
const UNMEASURED_PENALTY = Number.MAX_SAFE_INTEGER / 2;

/** How fast old latency is forgotten (Linkerd's default decay window). */
export const EWMA_DECAY_MS = 10_000;

interface Latency {
  /** Peak-EWMA response time, ms. */
  cost: number;
  /** When cost was last updated. */
  at: number;
}

/**
 * Latency-aware: two random choices scored by peak-EWMA response time × (in-flight + 1), the Finagle/Linkerd rule.
 * A slower answer than the average replaces it at once (peak), faster ones pull it down gradually, and with no new
 * samples it decays toward zero, so a backend that was slow and recovered is tried again.
 */
export class PeakEwma implements Policy {
  readonly #latency = new WeakMap<Backend, Latency>();
  readonly #weights: EvenWeights;

  constructor(
    private readonly weightOf: WeightOf = configuredWeight,
    private readonly random: () => number = Math.random,
    private readonly clock: () => number = performance.now.bind(performance),
  ) {
    this.#weights = new EvenWeights(weightOf);
  }

  candidates(available: readonly Backend[]): readonly Backend[] {
    const now = this.clock();
    const even = this.#weights.even(available);
    const cost = (b: Backend) => this.score(b, now) / (even ? 1 : this.weightOf(b));
    return twoChoices(available, this.weightOf, this.random, cost, even);
  }

  /**
   * Latency × (in-flight + 1). A backend with no sample yet but requests in flight scores worse than any measured
   * one (Finagle's penalty): otherwise a backend that hangs, never answering, would look free and take everything.
   */
  score(backend: Backend, now: number): number {
    const cost = this.cost(backend, now);
    if (cost === 0 && backend.inflight > 0) return UNMEASURED_PENALTY + backend.inflight;
    return cost * (backend.inflight + 1);
  }

  observe(backend: Backend, latencyMs: number): void {
    const now = this.clock();
    const last = this.#latency.get(backend);
    const keep = last ? Math.exp(-(now - last.at) / EWMA_DECAY_MS) : 0;
    const previous = last?.cost ?? 0;
    const cost = latencyMs > previous ? latencyMs : previous * keep + latencyMs * (1 - keep);
    this.#latency.set(backend, { cost, at: now });
  }

  /** The latency estimate now, decayed for the time since the last sample. */
  cost(backend: Backend, now: number): number {
    const latency = this.#latency.get(backend);
    if (!latency) return 0;
    return latency.cost * Math.exp(-(now - latency.at) / EWMA_DECAY_MS);
  }
}
