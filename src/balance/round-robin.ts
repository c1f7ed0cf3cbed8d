import type { Backend } from "../pool/backend.ts";
import { EvenWeights, type Policy, type WeightOf, configuredWeight, rotation } from "./policy.ts";

/**
 * Smooth weighted round robin, nginx's algorithm: every pick adds each backend's weight to its running score, takes
 * the highest, and takes the total off the winner. Weights 5,1,1 give a a b a c a a: the heavy backend's turns are
 * spread out, never bunched. Equal weights give plain rotation in configured order, so then the next turn is all it
 * takes. Retries go on in configured order after the pick.
 */
export class RoundRobin implements Policy {
  readonly #score = new WeakMap<Backend, number>();
  readonly #weights: EvenWeights;
  #turn = 0;

  constructor(private readonly weightOf: WeightOf = configuredWeight) {
    this.#weights = new EvenWeights(weightOf);
  }

  candidates(available: readonly Backend[]): readonly Backend[] {
    if (available.length === 0) return [];
    if (this.#weights.even(available)) {
      const start = this.#turn % available.length;
      this.#turn = start + 1;
      return rotation(available, start);
    }
    let total = 0;
    let best = 0;
    let bestScore = -Infinity;
    for (let i = 0; i < available.length; i++) {
      const backend = available[i]!;
      const weight = this.weightOf(backend);
      const score = (this.#score.get(backend) ?? 0) + weight;
      this.#score.set(backend, score);
      total += weight;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    this.#score.set(available[best]!, bestScore - total);
    return rotation(available, best);
  }
}
