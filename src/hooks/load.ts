/**
 * Loading a hooks file (`--hooks`): bundled with what it imports (Bun.build) and imported fresh each time, and
 * checked, so a typo in an export's name is an error at load rather than a hook that silently never runs.
 */
import { existsSync, realpathSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
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
  /** Tells this version from the next: a hash of the bundled code. */
  readonly version: string;
}

const HOOK_NAMES = ["onRequest", "onResponse"] as const;

/** Loads so far, process-wide. */
let loads = 0;

/** Bundles and checks the hooks file without running it: its code, version and sources, or a ConfigError. */
export async function bundleHooks(path: string): Promise<{ code: string; version: string; sources: string[] }> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ConfigError(`hooks: ${path}: no such file`);
  // The real path: Bun keeps where a symlink pointed, so a swapped one (a ConfigMap update) would bundle the old file.
  const entry = realpathSync(file);
  try {
    // One module with everything it imports from files and packages, so a change to any of them is a new version.
    const build = await Bun.build({ entrypoints: [entry], target: "bun", format: "esm", metafile: true });
    const code = await build.outputs[0]!.text();
    const sources = Object.keys(build.metafile?.inputs ?? {}).map((input) => resolve(input));
    return { code, version: Bun.hash(code).toString(36), sources };
  } catch (error) {
    throw new ConfigError(`hooks: ${path}: ${buildProblem(error, entry)}`);
  }
}

/** Bundles, imports and checks the hooks file; a problem is a ConfigError of one line: `hooks: <path>: <what is wrong>`. */
export async function loadHooks(path: string, bundled?: Awaited<ReturnType<typeof bundleHooks>>): Promise<LoadedHooks> {
  const { code, version, sources } = bundled ?? (await bundleHooks(path));
  let module: Record<string, unknown>;
  try {
    // A data: URL is imported in `bun` and the compiled binary alike; the count makes each load a module of its own
    // (the same code would be the cached module, its top-level code not run again).
    const source = `${code}\n// lb load ${++loads}\n`;
    module = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
  } catch (error) {
    throw new ConfigError(`hooks: ${path}: threw while loading: ${describeThrown(error)}`);
  }
  const problem = exportsProblem(module);
  if (problem) throw new ConfigError(`hooks: ${path}: ${problem}`);
  return { path, sources, version, ...(module as Hooks) };
}

/**
 * A syntax error or an import that does not resolve (Bun's BuildMessage or ResolveMessage, with its place, and its
 * file, from the hooks file's directory, when that is not the hooks file itself; several come as an AggregateError,
 * the first says enough).
 */
function buildProblem(thrown: unknown, entry: string): string {
  const first: unknown = thrown instanceof AggregateError && thrown.errors.length ? thrown.errors[0] : thrown;
  const { message, position } = first as { message?: string; position?: { file?: string; line: number; column: number } | null };
  if (!position) return String(message ?? first);
  const where = position.file && position.file !== entry ? `${relative(dirname(entry), position.file)} ` : "";
  return `${where}line ${position.line}:${position.column}: ${message}`;
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
