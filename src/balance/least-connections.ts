import type { Backend } from "../pool/backend.ts";
import { EvenWeights, type Policy, type WeightOf, configuredWeight, rotation } from "./policy.ts";

/**
 * Fewest requests in flight per unit of weight (requests, not connections: lb pools upstream connections, so a
 * request is the unit of load a backend feels). Ties are broken by a rotating start, so equal backends share
 * the load instead of the first one taking it all.
 */
export class LeastConnections implements Policy {
  #turn = 0;
  readonly #weights: EvenWeights;

  constructor(private readonly weightOf: WeightOf = configuredWeight) {
    this.#weights = new EvenWeights(weightOf);
  }

  candidates(available: readonly Backend[]): readonly Backend[] {
    const n = available.length;
    if (n === 0) return [];
    const start = this.#turn++ % n;
    let best = start;
    let bestLoad = Infinity;
    const even = this.#weights.even(available);
    for (let step = 0; step < n; step++) {
      const i = (start + step) % n;
      const load = even ? available[i]!.inflight : available[i]!.inflight / this.weightOf(available[i]!);
      if (load < bestLoad) {
        bestLoad = load;
        best = i;
      }
    }
    return rotation(available, best);
  }
}
