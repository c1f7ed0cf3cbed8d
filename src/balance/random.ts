import type { Backend } from "../pool/backend.ts";
import { EvenWeights, type Policy, type WeightOf, configuredWeight, rotation, weightedIndex } from "./policy.ts";

/** A weighted random pick; retries go on in configured order after it. */
export class RandomChoice implements Policy {
  readonly #weights: EvenWeights;

  constructor(
    private readonly weightOf: WeightOf = configuredWeight,
    private readonly random: () => number = Math.random,
  ) {
    this.#weights = new EvenWeights(weightOf);
  }

  candidates(available: readonly Backend[]): readonly Backend[] {
    if (available.length === 0) return [];
    const pick = this.#weights.even(available)
      ? Math.floor(this.random() * available.length)
      : weightedIndex(available, this.weightOf, this.random);
    return rotation(available, pick);
  }
}

/**
 * Two distinct weighted random draws; `cost` decides between them (lower wins, ties to the first draw). Used by
 * p2c (in-flight load) and ewma (latency × load). Two choices avoid both herding on one "best" backend and the
 * blindness of one random draw. `even`: every backend weighs the same (EvenWeights), so each draw is one number.
 */
export function twoChoices(
  available: readonly Backend[],
  weightOf: WeightOf,
  random: () => number,
  cost: (backend: Backend) => number,
  even: boolean,
): readonly Backend[] {
  const n = available.length;
  if (n <= 1) return available;
  const [first, second] = even ? evenDraws(n, random) : weightedDraws(available, weightOf, random);
  const pick = cost(available[second]!) < cost(available[first]!) ? second : first;
  return rotation(available, pick);
}

/** Two distinct indices below n, each equally likely. */
function evenDraws(n: number, random: () => number): [number, number] {
  const first = Math.floor(random() * n);
  const other = Math.floor(random() * (n - 1));
  return [first, other < first ? other : other + 1];
}

/** Two distinct indices, each drawn with probability proportional to weight. */
function weightedDraws(available: readonly Backend[], weightOf: WeightOf, random: () => number): [number, number] {
  const first = weightedIndex(available, weightOf, random);
  const rest = available.filter((_, i) => i !== first);
  return [first, available.indexOf(rest[weightedIndex(rest, weightOf, random)]!)];
}

/** Power of two random choices on requests in flight per unit of weight (HAProxy random(2), Envoy least_request). */
export class PowerOfTwo implements Policy {
  readonly #weights: EvenWeights;

  constructor(
    private readonly weightOf: WeightOf = configuredWeight,
    private readonly random: () => number = Math.random,
  ) {
    this.#weights = new EvenWeights(weightOf);
  }

  candidates(available: readonly Backend[]): readonly Backend[] {
    const even = this.#weights.even(available);
    const load = (b: Backend) => (even ? b.inflight : b.inflight / this.weightOf(b));
    return twoChoices(available, this.weightOf, this.random, load, even);
  }
}
