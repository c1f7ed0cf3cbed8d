/**
 * The hooks in force, and the watcher that reloads them when their file changes. A broken new version is refused
 * with its error in the log, and the last good hooks stay.
 */
import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Logger } from "../log.ts";
import { type LoadedHooks, loadHooks } from "./load.ts";

/** Editors save in bursts (write, rename, chmod): one reload once the burst is over. */
const DEFAULT_SETTLE_MS = 100;

export class HookSet {
  #current: LoadedHooks;
  readonly #log: Logger;
  readonly #watcher: FSWatcher;
  #settle: ReturnType<typeof setTimeout> | undefined;
  /** Loads started; a load applies only if no later one started, so a slow old load never replaces a newer one. */
  #loads = 0;
  /** The file as last seen (through symlinks): a change in the directory that leaves it alone reloads nothing. */
  #version: string;

  /** `initial`: the hooks as loadHooks gave them at startup (a broken file there is a startup error, not a log line). */
  constructor(initial: LoadedHooks, log: Logger, settleMs = DEFAULT_SETTLE_MS) {
    this.#current = initial;
    this.#log = log;
    const file = resolve(initial.path);
    this.#version = versionOf(file);
    // The directory, not the file: editors that save by writing a new file and renaming it over the old one
    // would leave a watcher on the file itself watching a file that is gone. Any change in it is looked at, not only
    // the file's name: a Kubernetes ConfigMap swaps a symlink (..data) and the file's own name sees no event.
    this.#watcher = watch(dirname(file), () => {
      clearTimeout(this.#settle);
      this.#settle = setTimeout(() => {
        const version = versionOf(file);
        if (version === this.#version) return;
        this.#version = version;
        void this.#reload();
      }, settleMs);
    });
  }

  get current(): LoadedHooks {
    return this.#current;
  }

  stop(): void {
    this.#loads++; // a load still in flight is dropped
    clearTimeout(this.#settle);
    this.#watcher.close();
  }

  async #reload(): Promise<void> {
    const load = ++this.#loads;
    const { path } = this.#current;
    try {
      const hooks = await loadHooks(path);
      if (load !== this.#loads) return;
      this.#current = hooks;
      this.#log.info(`hooks: reloaded ${path}`);
    } catch (error) {
      if (load === this.#loads) this.#log.error(`${(error as Error).message}; the last good hooks stay`);
    }
  }
}

/** What tells one version of the file from the next: inode, size and modification time, read through symlinks. */
function versionOf(file: string): string {
  try {
    const { ino, size, mtimeMs } = statSync(file);
    return `${ino}:${size}:${mtimeMs}`;
  } catch {
    return "missing";
  }
}
