/**
 * What a config reload changes. The backend lists of the previous and the new file are diffed: backends the file
 * dropped serve on until a backend it lists is in rotation, then drain and leave (pool/drain.ts), new ones are added (and checked before they take traffic), unchanged ones keep
 * their health, stats and connections. Backends added through the admin API are in neither file, so a reload leaves
 * them alone; admin states (draining, disabled) of unchanged backends are kept too.
 */
import type { BackendSpec } from "./backend-url.ts";
import { SETTINGS } from "./settings.ts";
import type { Config } from "./types.ts";
import { configView } from "./view.ts";

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

/** What a reload applied, in one line, and the restart-only settings it changed but could not apply. */
export interface ReloadReport {
  summary: string;
  /** Names of the restart-only settings whose new values wait for a restart (empty: everything was applied). */
  restartNeeded: string[];
}

/** A restart-only setting the new config changes: its name, and "name running → next" for operators to read. */
export interface PendingChange {
  setting: string;
  change: string;
}

/** The restart-only settings `next` changes, which keep their running values; secrets are named, never shown. */
export function restartPending(running: Config, next: Config): PendingChange[] {
  const [before, after] = [configView(running), configView(next)];
  return changedSettings(running, next)
    .filter((name) => RESTART_ONLY.has(name))
    .map((setting) => {
      const [from, to] = [shownValue(before[setting]), shownValue(after[setting])];
      return { setting, change: from === to ? setting : `${setting} ${from} → ${to}` };
    });
}

function shownValue(value: unknown): string {
  if (value === "") return "(none)";
  return typeof value === "string" ? value : JSON.stringify(value);
}
