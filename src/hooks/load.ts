/**
 * Loading a hooks file (`--hooks`): imported fresh each time, and checked, so a typo in an export's name is an
 * error at load rather than a hook that silently never runs.
 */
import { existsSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { closest } from "../config/did-you-mean.ts";
import { ConfigError } from "../config/load.ts";
import type { Hooks } from "./lb-hooks.d.ts";

export type { HookContext, Hooks } from "./lb-hooks.d.ts";

/** A checked hooks module: at least one of the hooks is set. */
export interface LoadedHooks extends Readonly<Hooks> {
  /** The file as configured. */
  readonly path: string;
}

const HOOK_NAMES = ["onRequest", "onResponse"] as const;

/**
 * Bun caches a module by its specifier, and a file URL's query does not make a new one (Bun 1.4.5), while an
 * absolute path's does: `/etc/lb/hooks.ts?v=2` is imported anew, under `bun` and in the compiled binary alike.
 * Process-wide, so two loads of one file never share a specifier. Modules the hooks file imports are not reloaded.
 */
let imports = 0;

/** Imports and checks the hooks file; a problem is a ConfigError of one line: `hooks: <path>: <what is wrong>`. */
export async function loadHooks(path: string): Promise<LoadedHooks> {
  const file = resolve(path);
  if (!existsSync(file)) throw new ConfigError(`hooks: ${path}: no such file`);
  let module: Record<string, unknown>;
  try {
    // The real path: Bun keeps where a symlink pointed, so a swapped one (a ConfigMap update) would load the old file.
    module = await import(`${realpathSync(file)}?v=${++imports}`);
  } catch (error) {
    throw new ConfigError(`hooks: ${path}: ${importProblem(error)}`);
  }
  const problem = exportsProblem(module);
  if (problem) throw new ConfigError(`hooks: ${path}: ${problem}`);
  return { path, ...(module as Hooks) };
}

/**
 * A syntax error (Bun's BuildMessage, with its place; several come as an AggregateError, the first says enough) or
 * what the module threw while it ran.
 */
function importProblem(thrown: unknown): string {
  const errors = thrown instanceof AggregateError ? thrown.errors : [];
  const error: unknown = errors[0]?.name === "BuildMessage" ? errors[0] : thrown;
  const position = (error as { position?: { line: number; column: number } | null }).position;
  if (error instanceof Error && error.name === "BuildMessage") {
    return `${position ? `line ${position.line}:${position.column}: ` : ""}${error.message}`;
  }
  return `threw while loading: ${describeThrown(error)}`;
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
