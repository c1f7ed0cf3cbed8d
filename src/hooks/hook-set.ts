/**
 * The hooks in force, and the watcher that reloads them when their file, or a module it imports, changes. A broken
 * new version is refused with its error in the log, and the last good hooks stay.
 */
import { type FSWatcher, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "../log.ts";
import { type LoadedHooks, bundleHooks, loadHooks } from "./load.ts";

/** Editors save in bursts (write, rename, chmod): one reload once the burst is over. */
const DEFAULT_SETTLE_MS = 100;

export class HookSet {
  #current: LoadedHooks;
  readonly #log: Logger;
  readonly #settleMs: number;
  /** One per directory watched: the configured file's, and each of its local sources'. */
  readonly #watchers = new Map<string, FSWatcher>();
  #settle: ReturnType<typeof setTimeout> | undefined;
  /** Loads started; a load applies only if no later one started, so a slow old load never replaces a newer one. */
  #loads = 0;
  /** The last refusal logged: the same problem seen again (another change in the directory) is not logged twice. */
  #lastProblem = "";

  /** `initial`: the hooks as loadHooks gave them at startup (a broken file there is a startup error, not a log line). */
  constructor(initial: LoadedHooks, log: Logger, settleMs = DEFAULT_SETTLE_MS) {
    this.#current = initial;
    this.#log = log;
    this.#settleMs = settleMs;
    this.#watch(initial);
  }

  get current(): LoadedHooks {
    return this.#current;
  }

  stop(): void {
    this.#loads++; // a load still in flight is dropped
    clearTimeout(this.#settle);
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  /**
   * Directories, not files: editors that save by writing a new file and renaming it over the old one would leave a
   * watcher on the file itself watching a file that is gone. Any change in them is looked at, not only the files'
   * names: a Kubernetes ConfigMap swaps a symlink (..data) and the file's own name sees no event. Packages (under
   * node_modules) are bundled but not watched.
   */
  #watch(hooks: LoadedHooks): void {
    const local = hooks.sources.filter((source) => !source.includes("/node_modules/"));
    const wanted = new Set([dirname(resolve(hooks.path)), ...local.map((source) => dirname(source))]);
    for (const [directory, watcher] of this.#watchers) {
      if (wanted.has(directory)) continue;
      watcher.close();
      this.#watchers.delete(directory);
    }
    for (const directory of wanted) {
      if (this.#watchers.has(directory)) continue;
      try {
        this.#watchers.set(directory, watch(directory, () => this.#changed()));
      } catch (error) {
        this.#log.warn(`hooks: cannot watch ${directory} for changes (${(error as Error).message})`);
      }
    }
  }

  #changed(): void {
    clearTimeout(this.#settle);
    this.#settle = setTimeout(() => void this.#reload(), this.#settleMs);
  }

  async #reload(): Promise<void> {
    const load = ++this.#loads;
    const { path, version } = this.#current;
    try {
      const bundled = await bundleHooks(path);
      if (load !== this.#loads) return;
      // A change that leaves the bundled code as it was (another file in the directory, a touch) reloads nothing.
      if (bundled.version === version) {
        this.#lastProblem = "";
        return;
      }
      const hooks = await loadHooks(path, bundled);
      if (load !== this.#loads) return;
      this.#current = hooks;
      this.#lastProblem = "";
      this.#watch(hooks);
      this.#log.info(`hooks: reloaded ${path}`);
    } catch (error) {
      const problem = (error as Error).message;
      if (load !== this.#loads || problem === this.#lastProblem) return;
      this.#lastProblem = problem;
      this.#log.error(`${problem}; the last good hooks stay`);
    }
  }
}
