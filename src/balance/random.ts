import type { Backend } from "../pool/backend.ts";
import { type Policy, type WeightOf, configuredWeight, rotation, weightedIndex } from "./policy.ts";

/** A weighted random pick; retries go on in configured order after it. */
export class RandomChoice implements Policy {

  constructor(
    private readonly weightOf: WeightOf = configuredWeight,
    private readonly random: () => number = Math.random,
  ) {}

  candidates(available: readonly Backend[]): readonly Backend[] {
    if (available.length === 0) return [];
    return rotation(available, weightedIndex(available, this.weightOf, this.random));
  }
}

/**
 * Two distinct weighted random draws; `cost` decides between them (lower wins, ties to the first draw). Used by
 * p2c (in-flight load) and ewma (latency × load). Two choices avoid both herding on one "best" backend and the
 * blindness of one random draw.
 */
export function twoChoices(
  available: readonly Backend[],
  weightOf: WeightOf,
  random: () => number,
  cost: (backend: Backend) => number,
): readonly Backend[] {
  const n = available.length;
  if (n <= 1) return available;
  const first = weightedIndex(available, weightOf, random);
  const rest = available.filter((_, i) => i !== first);
  const second = available.indexOf(rest[weightedIndex(rest, weightOf, random)]!);
  const pick = cost(available[second]!) < cost(available[first]!) ? second : first;
  return rotation(available, pick);
}

/** Power of two random choices on requests in flight per unit of weight (HAProxy random(2), Envoy least_request). */
export class PowerOfTwo implements Policy {

  constructor(
    private readonly weightOf: WeightOf = configuredWeight,
    private readonly random: () => number = Math.random,
  ) {}

  candidates(available: readonly Backend[]): readonly Backend[] {
    return twoChoices(available, this.weightOf, this.random, (b) => b.inflight / this.weightOf(b));
  }
}
