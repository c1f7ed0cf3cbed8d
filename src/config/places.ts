/**
 * Where in a config file's text something is written, for messages that say `lb.toml:12:`. Bun's TOML, YAML and JSON
 * parsers report no positions (not even for a syntax error), so the lines are found in the text, without a second
 * parser to depend on.
 */

/** A value's place in the parsed file: ["pools", "api", "policy"], ["routes", 1, "path-prefix"]. */
export type KeyPath = ReadonlyArray<string | number>;

/** pools.api.policy, routes[1].path-prefix: the path as messages name it. */
export function formatKeyPath(path: KeyPath): string {
  return path.map((part, i) => (typeof part === "number" ? `[${part}]` : i ? `.${part}` : part)).join("");
}

export type FileFormat = "toml" | "yaml" | "json";

/** The line (from 1) where `path` is written; for a key the file leaves out, the line of the table that lacks it. */
export function lineOfPath(text: string, format: FileFormat, path: KeyPath): number | undefined {
  if (format === "toml") return lineInToml(text, path);
  // YAML and JSON: top-level keys only (`key:`, `"key":`); a nested one is named by its path alone.
  return path.length === 1 ? lineOfTopLevelKey(text, String(path[0])) : undefined;
}

function lineOfTopLevelKey(text: string, key: string): number | undefined {
  const pattern = new RegExp(`^\\s*["']?${escapeRegExp(key)}["']?\\s*:`);
  const index = text.split("\n").findIndex((line) => pattern.test(line));
  return index === -1 ? undefined : index + 1;
}

/** A bare or quoted TOML key, and a dotted run of them. */
const TOML_KEY = String.raw`(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)`;
const TOML_DOTTED = String.raw`${TOML_KEY}(?:\s*\.\s*${TOML_KEY})*`;
const TOML_HEADER = new RegExp(String.raw`^\s*(\[\[?)\s*(${TOML_DOTTED})\s*\]\]?\s*(?:#.*)?$`);
const TOML_ASSIGNMENT = new RegExp(String.raw`^\s*(${TOML_DOTTED})\s*=`);

/**
 * Each line's path (`[pools.api]` then `policy = ...` is pools.api.policy; the second `[[routes]]` is routes[1]):
 * the first line whose path is `path`, else the first whose path is the longest start of it (the table of an inline
 * or missing key).
 */
function lineInToml(text: string, path: KeyPath): number | undefined {
  const wanted = path.map(String);
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  let best: { line: number; depth: number } | undefined;
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    const header = TOML_HEADER.exec(line);
    const assignment = header ? null : TOML_ASSIGNMENT.exec(line);
    let linePath: string[];
    if (header) {
      table = tomlKeys(header[2]!);
      if (header[1] === "[[") {
        const name = table.join(".");
        const count = arrayCounts.get(name) ?? 0;
        arrayCounts.set(name, count + 1);
        table = [...table, String(count)];
      }
      linePath = table;
    } else if (assignment) linePath = [...table, ...tomlKeys(assignment[1]!)];
    else continue;
    const depth = sharedStart(linePath, wanted);
    if (depth === linePath.length && (!best || depth > best.depth)) best = { line: index + 1, depth };
    if (best?.depth === wanted.length) return best.line;
  }
  return best?.line;
}

function tomlKeys(dotted: string): string[] {
  return [...dotted.matchAll(new RegExp(TOML_KEY, "g"))].map(([key]) => key.replace(/^(["'])(.*)\1$/, "$2"));
}

function sharedStart(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The line a syntax error is on, for parsers whose errors carry none (Bun's TOML and YAML): the first line at which
 * the text up to it fails with the same message as the whole file. A prefix cut inside a multi-line array or string
 * fails otherwise ("unterminated"), so it is passed over. JSON is left out: a JSON prefix never parses.
 */
export function lineOfSyntaxError(text: string, parse: (text: string) => unknown, message: string): number | undefined {
  const lines = text.split("\n");
  for (let end = 1; end <= lines.length; end++) {
    try {
      // With each line's newline: a string cut at the end of the text fails otherwise than one cut by a newline.
      parse(`${lines.slice(0, end).join("\n")}\n`);
    } catch (error) {
      if ((error as Error).message === message) return end;
    }
  }
  return undefined;
}
