/** Builds the configured policy; the one place that knows every policy's name. */
import type { HashKey } from "../config/hash-key.ts";
import type { PolicyName } from "../config/types.ts";
import { PeakEwma } from "./ewma.ts";
import { RendezvousHash } from "./hash.ts";
import { LeastConnections } from "./least-connections.ts";
import type { Policy, WeightOf } from "./policy.ts";
import { PowerOfTwo, RandomChoice } from "./random.ts";
import { RoundRobin } from "./round-robin.ts";

export function createPolicy(config: { policy: PolicyName; hashKey: HashKey }, weightOf: WeightOf): Policy {
  switch (config.policy) {
    case "round-robin":
      return new RoundRobin(weightOf);
    case "least-connections":
      return new LeastConnections(weightOf);
    case "random":
      return new RandomChoice(weightOf);
    case "p2c":
      return new PowerOfTwo(weightOf);
    case "ewma":
      return new PeakEwma(weightOf);
    case "hash":
      return new RendezvousHash(config.hashKey, weightOf);
  }
}
