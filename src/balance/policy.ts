import type { Backend } from "../pool/backend.ts";

/**
 * The selection seam. A policy orders the available backends for one request; the forwarder walks that order and
 * skips what it cannot use, so "retry on another backend" needs nothing from the policy.
 * Policies must take any shared state (counters) when called, before the caller awaits anything.
 */
export interface Policy {
  readonly name: string;
  candidates(available: readonly Backend[]): Iterable<Backend>;
}

/** Every backend once, starting at `start` and wrapping around. */
export function* rotation<T>(items: readonly T[], start: number): Generator<T> {
  for (let i = 0; i < items.length; i++) yield items[(start + i) % items.length]!;
}
