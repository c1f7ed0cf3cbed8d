import type { Backend } from "../pool/backend.ts";
import { type Policy, type RequestContext, type WeightOf, configuredWeight } from "./policy.ts";
import type { HashKey } from "../config/hash-key.ts";
import { keyOf } from "./request-keys.ts";
import { RoundRobin } from "./round-robin.ts";

/**
 * Consistent hashing by rendezvous (highest random weight): each backend scores the key, the highest score wins,
 * and the rest follow in score order for retries. When a backend leaves, only the keys it won move, each to its own
 * runner-up; nobody else's key moves. Weighted with the logarithmic method, so weight 2 wins twice the keys.
 * A request without the key (no such header or cookie) is balanced round robin.
 */
export class RendezvousHash implements Policy {
  readonly #fallback: RoundRobin;
  readonly #seeds = new WeakMap<Backend, number>();

  constructor(
    private readonly key: HashKey,
    private readonly weightOf: WeightOf = configuredWeight,
  ) {
    this.#fallback = new RoundRobin(weightOf);
  }

  candidates(available: readonly Backend[], request: RequestContext): readonly Backend[] {
    const key = keyOf(this.key, request);
    if (key === undefined) return this.#fallback.candidates(available);
    return rankByKey(available, key, this.weightOf, (b) => this.#seed(b));
  }

  #seed(backend: Backend): number {
    let seed = this.#seeds.get(backend);
    if (seed === undefined) this.#seeds.set(backend, (seed = Bun.hash.xxHash32(backend.url)));
    return seed;
  }
}

/** Backends ordered by their rendezvous score for `key`, best first. */
export function rankByKey(
  backends: readonly Backend[],
  key: string,
  weightOf: WeightOf,
  seedOf: (backend: Backend) => number,
): Backend[] {
  const scored = backends.map((backend) => {
    // A uniform draw in (0, 1) from the key and backend; -w / ln(u) is the weighted rendezvous score.
    const unit = (Bun.hash.xxHash32(key, seedOf(backend)) + 0.5) / 2 ** 32;
    return { backend, score: -weightOf(backend) / Math.log(unit) };
  });
  scored.sort((a, b) => b.score - a.score);
  return scored.map((s) => s.backend);
}
