/**
 * Loading a hooks file (`--hooks`): bundled with the local modules it imports (Bun.build) and imported fresh each
 * time, and checked, so a typo in an export's name is an error at load rather than a hook that silently never runs.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import type { BunPlugin } from "bun";
import { closest } from "../config/did-you-mean.ts";
import { ConfigError } from "../config/load.ts";
import type { Hooks } from "./lb-hooks.d.ts";

export type { HookContext, Hooks } from "./lb-hooks.d.ts";

/** A checked hooks module: at least one of the hooks is set. */
export interface LoadedHooks extends Readonly<Hooks> {
  /** The file as configured. */
  readonly path: string;
  /** The files bundled into it, absolute: the hooks file (its real path) and every local module it imports. */
  readonly sources: readonly string[];
}

/** The hooks file and its local modules as one module's code, and those files. */
export interface HooksBundle {
  readonly code: string;
  readonly sources: readonly string[];
}

/** A hooks file that does not build; `file` is the one at fault (an imported module's, maybe). */
export class HooksBuildError extends ConfigError {
  constructor(
    message: string,
    readonly file: string | undefined,
  ) {
    super(message);
  }
}

const HOOK_NAMES = ["onRequest", "onResponse"] as const;

/** Loads so far, process-wide: each bundle is a module of its own name, so a new one. */
let loads = 0;

/**
 * Every file bundled into hooks this process has loaded, absolute: an older version's timer may still fire after a
 * reload, and its error is the hooks' all the same (hooks/escaped.ts tells hook code by these).
 */
const hookSources = new Set<string>();

/**
 * Whether a stack frame's file is hook code. The bundle's source map names each module by its path from the working
 * directory, as Bun.build's metafile does (the sources above are those, resolved); lb's own frames are absolute.
 */
export function isHookSource(file: string): boolean {
  return hookSources.has(resolve(file));
}

/** Whether any hooks file has been loaded in this process (its code may have left timers and promises behind). */
export function hooksLoaded(): boolean {
  return hookSources.size > 0;
}

/**
 * Packages stay outside the bundle, imported by their resolved path: loaded once and shared by every version of the
 * hooks (a reload re-runs the hooks' own code, not a package's), and found wherever the bundle is imported from.
 */
const packagesByPath: BunPlugin = {
  name: "lb-hooks-packages",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, ({ path, importer }) => {
      let resolved: string;
      try {
        resolved = Bun.resolveSync(path, dirname(importer));
      } catch {
        return undefined; // Bun's own resolver says it cannot, with the import's place
      }
      if (!resolved.startsWith("/")) return { path, external: true }; // a built-in module (fs, bun:sqlite)
      // A package; a bare name that leads to a local file (a tsconfig path alias) is bundled like other local modules.
      return resolved.includes("/node_modules/") ? { path: resolved, external: true } : undefined;
    });
  },
};

/** Bundles the hooks file without running it: its code and sources, or a HooksBuildError of one line. */
export async function bundleHooks(path: string): Promise<HooksBundle> {
  const file = resolve(path);
  if (!existsSync(file)) throw new HooksBuildError(`hooks: ${path}: no such file`, file);
  // The real path: Bun keeps where a symlink pointed, so a swapped one (a ConfigMap update) would bundle the old file.
  const entry = realpathSync(file);
  try {
    // An inline source map: a hook's stack trace names the hooks file (or module) and line, not the bundle's.
    const build = await Bun.build({ entrypoints: [entry], target: "bun", format: "esm", metafile: true, sourcemap: "inline", plugins: [packagesByPath] });
    const sources = Object.keys(build.metafile?.inputs ?? {}).map((input) => resolve(input));
    return { code: await build.outputs[0]!.text(), sources };
  } catch (error) {
    const { message, file: culprit } = buildProblem(error, entry);
    throw new HooksBuildError(`hooks: ${path}: ${message}`, culprit);
  }
}

/** Bundles (unless given the bundle), imports and checks the hooks file; a problem is a ConfigError of one line. */
export async function loadHooks(path: string, bundle?: HooksBundle): Promise<LoadedHooks> {
  const { code, sources } = bundle ?? (await bundleHooks(path));
  let module: Record<string, unknown>;
  try {
    // A virtual module of its own name: nothing written to disk (lb may run on a read-only filesystem), and a stack
    // trace names the hooks file's lines through the bundle's source map (a data: URL would print the whole bundle).
    const name = `lb-hooks-${++loads}`;
    for (const source of sources) hookSources.add(source); // before it runs: its top-level code may set timers
    Bun.plugin({ name, setup: (build) => void build.module(name, () => ({ contents: code, loader: "js" })) });
    module = await import(name);
  } catch (error) {
    throw new ConfigError(`hooks: ${path}: threw while loading: ${describeThrown(error)}`);
  }
  const problem = exportsProblem(module);
  if (problem) throw new ConfigError(`hooks: ${path}: ${problem}`);
  return { path, sources, ...(module as Hooks) };
}

/** What tells one state of these files from the next: inode, size and modification time of each, through symlinks. */
export function filesVersion(files: Iterable<string>): string {
  return [...files]
    .map((file) => {
      try {
        const { ino, size, mtimeMs } = statSync(file);
        return `${ino}:${size}:${mtimeMs}`;
      } catch {
        return "missing";
      }
    })
    .join(",");
}

/**
 * A syntax error or an import that does not resolve (Bun's BuildMessage or ResolveMessage, with its place, and its
 * file, from the hooks file's directory, when that is not the hooks file itself; several come as an AggregateError,
 * the first says enough).
 */
function buildProblem(thrown: unknown, entry: string): { message: string; file: string | undefined } {
  const first: unknown = thrown instanceof AggregateError && thrown.errors.length ? thrown.errors[0] : thrown;
  const { message, position } = first as { message?: string; position?: { file?: string; line: number; column: number } | null };
  if (!position) return { message: String(message ?? first), file: undefined };
  const where = position.file && position.file !== entry ? `${relative(dirname(entry), position.file)} ` : "";
  return { message: `${where}line ${position.line}:${position.column}: ${message}`, file: position.file };
}

export function describeThrown(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function exportsProblem(module: Record<string, unknown>): string | null {
  for (const name of Object.keys(module)) {
    if (HOOK_NAMES.includes(name as (typeof HOOK_NAMES)[number])) continue;
    const guess = closest(name, HOOK_NAMES);
    return `exports "${name}", which is not a hook${guess ? `; did you mean ${guess}?` : ""} (a hooks file exports onRequest and/or onResponse only)`;
  }
  for (const name of HOOK_NAMES) {
    if (name in module && typeof module[name] !== "function") return `${name} is ${typeof module[name]}, not a function`;
  }
  return HOOK_NAMES.some((name) => name in module) ? null : "exports no hook; export function onRequest(ctx) and/or onResponse(ctx, response)";
}
