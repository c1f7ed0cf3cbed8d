/**
 * What a config reload changes. The backend lists of the previous and the new file are diffed: backends the file
 * dropped are drained and removed, new ones are added (and checked before they take traffic), unchanged ones keep
 * their health, stats and connections. Backends added through the admin API are in neither file, so a reload leaves
 * them alone; admin states (draining, disabled) of unchanged backends are kept too.
 */
import type { BackendSpec } from "./backend-url.ts";
import { SETTINGS } from "./settings.ts";
import type { Config } from "./types.ts";

export interface BackendDiff {
  added: BackendSpec[];
  /** URLs the new file no longer lists. */
  removed: string[];
  /** Still listed, with a new weight. */
  reweighted: BackendSpec[];
}

export function diffBackends(previous: readonly BackendSpec[], next: readonly BackendSpec[]): BackendDiff {
  const before = new Map(previous.map((spec) => [spec.url, spec.weight]));
  const after = new Set(next.map((spec) => spec.url));
  return {
    added: next.filter((spec) => !before.has(spec.url)),
    removed: previous.filter((spec) => !after.has(spec.url)).map((spec) => spec.url),
    reweighted: next.filter((spec) => before.has(spec.url) && before.get(spec.url) !== spec.weight),
  };
}

/** Settings that only a restart can change (marked so in the settings table): the listeners and where logs go. */
export const RESTART_ONLY: ReadonlySet<string> = new Set(SETTINGS.filter((s) => s.restart).map((s) => s.name));

/** Names of the settings (other than backends) whose values differ. */
export function changedSettings(previous: Config, next: Config): string[] {
  return SETTINGS.filter((s) => s.key !== "backends" && !Bun.deepEquals(previous[s.key], next[s.key])).map((s) => s.name);
}

/** The config in force after a reload: the new one, except the restart-only settings, which keep running values. */
export function effectiveConfig(running: Config, next: Config): Config {
  const kept = SETTINGS.filter((s) => RESTART_ONLY.has(s.name)).map((s) => [s.key, running[s.key]]);
  return { ...next, ...Object.fromEntries(kept) };
}
