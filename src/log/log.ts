/**
 * Lifecycle messages (startup, health changes, shutdown) through consola, on stderr. Access lines have their own
 * cheap writer in access-log.ts: consola's reporter costs ~15 µs a line, too much for the hot path.
 */
// consola/core: the same createConsola without the default reporters lb never uses (they load node:tty and more: ~10 MiB).
import { type ConsolaInstance, type LogObject, createConsola } from "consola/core";
import { format } from "node:util";
import type { LogFormat, LogLevel } from "../config/types.ts";

const CONSOLA_LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4 };
const LEVEL_NAMES: Record<number, string> = { 0: "error", 1: "warn", 2: "info", 3: "info", 4: "debug", 5: "trace" };

export type Logger = ConsolaInstance;

export function consolaLevel(level: LogLevel): number {
  return CONSOLA_LEVELS[level];
}

/** `prefix` starts every message: a worker's lines say which worker wrote them. */
export function createLogger(level: LogLevel, logFormat: LogFormat, prefix = ""): Logger {
  const colors = Boolean(process.stderr.isTTY) && !process.env.NO_COLOR;
  const line = logFormat === "json" ? (entry: LogObject) => jsonLine(entry, prefix) : (entry: LogObject) => prettyLine(entry, colors, prefix);
  return createConsola({
    level: CONSOLA_LEVELS[level],
    throttle: 0,
    reporters: [{ log: (entry) => process.stderr.write(line(entry)) }],
  });
}

const LEVEL_COLORS: Record<string, string> = { error: "31", warn: "33", info: "36", debug: "90" };

/** One compact line a person can scan: time, level, message (consola's default boxes a warning in blank lines). */
function prettyLine(entry: LogObject, colors: boolean, prefix: string): string {
  const level = LEVEL_NAMES[entry.level] ?? entry.type;
  const label = level.toUpperCase().padEnd(5);
  const shown = colors ? `\x1b[${LEVEL_COLORS[level] ?? "0"}m${label}\x1b[0m` : label;
  return `${entry.date.toISOString()} ${shown} ${prefix}${splitFields(entry).msg}\n`;
}

function jsonLine(entry: LogObject, prefix: string): string {
  const { msg, fields } = splitFields(entry);
  return `${JSON.stringify({ time: entry.date.toISOString(), level: LEVEL_NAMES[entry.level] ?? entry.type, msg: prefix + msg, ...fields })}\n`;
}

/**
 * A message, and the fields given after it as one object (`log.warn("backend x went down", { backend, state })`):
 * JSON lines carry them as fields alerts can match, pretty lines show the message alone.
 */
function splitFields(entry: LogObject): { msg: string; fields?: object } {
  const [first, ...rest] = entry.args;
  const fields = rest.length === 1 && typeof rest[0] === "object" && rest[0] !== null ? (rest[0] as object) : undefined;
  return { msg: fields ? format(first) : format(first, ...rest), fields };
}

/**
 * A line that may recur on every request (no route, a failing hook): said at most once per interval, with how many
 * were left unsaid since, so a scanner or a broken hook cannot flood the log.
 */
export class ThrottledLine {
  #saidAt = Number.NEGATIVE_INFINITY;
  #unsaid = 0;

  constructor(private readonly everyMs: number) {}

  say(write: (text: string) => void, text: string): void {
    const now = performance.now();
    if (now - this.#saidAt < this.everyMs) {
      this.#unsaid++;
      return;
    }
    write(this.#unsaid ? `${text} (and ${this.#unsaid} more like it since the last such line)` : text);
    this.#saidAt = now;
    this.#unsaid = 0;
  }
}
