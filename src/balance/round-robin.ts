import type { Backend } from "../pool/backend.ts";
import { type Policy, rotation } from "./policy.ts";

/** Each request starts one step further along the available backends (configured order); retries go on from there. */
export class RoundRobin implements Policy {
  readonly name = "round-robin";
  #counter = 0;

  candidates(available: readonly Backend[]): Iterable<Backend> {
    if (available.length === 0) return [];
    return rotation(available, this.#counter++ % available.length);
  }
}
