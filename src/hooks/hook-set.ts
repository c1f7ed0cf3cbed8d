/**
 * The hooks in force, and the watcher that reloads them when their file, or a module it imports, changes. A broken
 * new version is refused with its error in the log, and the last good hooks stay.
 */
import { type FSWatcher, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "../log/log.ts";
import { HooksBuildError, type LoadedHooks, bundleHooks, filesVersion, loadHooks } from "./load.ts";

/** Editors save in bursts (write, rename, chmod): one reload once the burst is over. */
const DEFAULT_SETTLE_MS = 100;

export class HookSet {
  #current: LoadedHooks;
  readonly #log: Logger;
  readonly #settleMs: number;
  readonly #onLooked: () => void;
  readonly #watchers: FSWatcher[] = [];
  #settle: ReturnType<typeof setTimeout> | undefined;
  /** Loads started; a load applies only if no later one started, so a slow old load never replaces a newer one. */
  #loads = 0;
  /** The files the last build read (or, when it failed, the good hooks' and the faulty one), and their state then. */
  #tracked: string[];
  #trackedVersion: string;
  /** The last refusal logged: the same problem seen again (another change in the directory) is not logged twice. */
  #lastProblem = "";

  /**
   * `initial`: the hooks as loadHooks gave them at startup (a broken file there is a startup error, not a log line).
   * `onLooked` is told each time a burst of changes has been dealt with (reloaded, refused, or found to be nothing
   * the hooks are built from): a test waits for it to see that a change did nothing.
   */
  constructor(initial: LoadedHooks, log: Logger, settleMs = DEFAULT_SETTLE_MS, onLooked: () => void = () => {}) {
    this.#current = initial;
    this.#log = log;
    this.#settleMs = settleMs;
    this.#onLooked = onLooked;
    this.#tracked = this.#withPath(initial.sources);
    this.#trackedVersion = filesVersion(this.#tracked);
    this.#watch();
  }

  get current(): LoadedHooks {
    return this.#current;
  }

  stop(): void {
    this.#loads++; // a load still in flight is dropped
    clearTimeout(this.#settle);
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }

  /** The configured path first (a symlink swapped under it changes what it stats as), then the files. */
  #withPath(files: readonly string[]): string[] {
    return [resolve(this.#current.path), ...files];
  }

  /**
   * Directories, not files: editors that save by writing a new file and renaming it over the old one would leave a
   * watcher on the file itself watching a file that is gone. Any change in them is looked at, not only the files'
   * names: a Kubernetes ConfigMap swaps a symlink (..data) and the file's own name sees no event. Watched anew after
   * every build, so a directory that was removed and made again is followed too. Packages are not watched.
   */
  #watch(): void {
    for (const watcher of this.#watchers.splice(0)) watcher.close();
    for (const directory of new Set(this.#tracked.map((file) => dirname(file)))) {
      try {
        this.#watchers.push(watch(directory, () => this.#changed()));
      } catch (error) {
        this.#log.warn(`hooks: cannot watch ${directory} for changes (${(error as Error).message})`);
      }
    }
  }

  #changed(): void {
    clearTimeout(this.#settle);
    this.#settle = setTimeout(() => void this.#reload().then(this.#onLooked), this.#settleMs);
  }

  async #reload(): Promise<void> {
    // Another file in the directory changed (a log, an editor's swap file): nothing the hooks are built from.
    if (filesVersion(this.#tracked) === this.#trackedVersion) return;
    const load = ++this.#loads;
    const { path } = this.#current;
    try {
      const bundle = await bundleHooks(path).catch((error: unknown) => {
        const culprit = error instanceof HooksBuildError ? error.file : undefined;
        this.#track([...this.#current.sources, ...(culprit ? [culprit] : [])]);
        throw error;
      });
      if (load !== this.#loads) return;
      this.#track(bundle.sources);
      const hooks = await loadHooks(path, bundle);
      if (load !== this.#loads) return;
      this.#current = hooks;
      this.#lastProblem = "";
      this.#log.info(`hooks: reloaded ${path}`);
    } catch (error) {
      const problem = (error as Error).message;
      if (load !== this.#loads || problem === this.#lastProblem) return;
      this.#lastProblem = problem;
      this.#log.error(`${problem}; the last good hooks stay`);
    }
  }

  /** Follows these files from now on: their state as it is now, their directories watched. */
  #track(files: readonly string[]): void {
    this.#tracked = this.#withPath(files);
    this.#trackedVersion = filesVersion(this.#tracked);
    this.#watch();
  }
}
