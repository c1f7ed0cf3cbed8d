/**
 * Errors that escape hook code: thrown from a timer or callback a hook set up, or a promise it left rejected with
 * nobody to handle it. No call of lb's surrounds that code, so they reach the process, where these handlers tell them
 * by their stack (a frame in the hooks file or a module it imports: the bundle's source map names them), log and
 * count them, and let lb go on serving.
 *
 * Any other uncaught exception is lb's own bug: a callback of lb's stopped half-way, and what it left half-done
 * (a counter, a pool's state, a connection) cannot be trusted. That is logged with its stack and the process exits,
 * so a supervisor restarts it (with --workers, the primary restarts the worker). Other unhandled rejections are
 * logged and lb goes on: the code that made the promise has run to its end, nothing was cut short.
 */
import { resolve } from "node:path";
import { type Logger, ThrottledLine } from "../log.ts";
import { describeThrown, isHookSource } from "./load.ts";

/** sysexits' EX_SOFTWARE: lb's own uncaught error (a crash, not a startup problem: those exit 1 or 2). */
export const EXIT_INTERNAL_ERROR = 70;
/** At most one line per place this often (a hook that leaves a failing timer on every request must not flood the log). */
const ESCAPED_LOG_EVERY_MS = 1000;
/** Places remembered for throttling; past that they start over (a hooks file fails in few places). */
const MAX_PLACES = 100;

/** A stack frame: "at name (file:line:col)" or "at file:line:col". */
const FRAME = /^\s*at (?:.*\()?(.+?):(\d+):(\d+)\)?$/;

/**
 * Where in hook code `thrown` comes from: the absolute file, line and column of the first frame of its stack in
 * the hooks file or a module it imports; null when no frame is (lb's own code, Bun's internals, a value that is not
 * an Error and so has no stack).
 */
export function hookPlace(thrown: unknown, isHookCode: (file: string) => boolean = isHookSource): string | null {
  const stack = (thrown as { stack?: unknown } | null | undefined)?.stack;
  if (typeof stack !== "string") return null;
  for (const line of stack.split("\n")) {
    const frame = FRAME.exec(line);
    if (frame && isHookCode(frame[1]!)) return `${resolve(frame[1]!)}:${frame[2]}:${frame[3]}`;
  }
  return null;
}

export interface EscapeHandling {
  /** The process's logger as it is now (a worker makes its own once the primary sends the config). */
  log: () => Logger;
  /** Counts one escaped hook error (lb_hook_errors_total{hook="escaped"}). */
  count: () => void;
  exit?: (code: number) => void;
}

/** Installs the process's handlers for uncaught exceptions and unhandled rejections (see above). */
export function handleEscapedErrors({ log, count, exit = (code) => process.exit(code) }: EscapeHandling): void {
  const lines = new Map<string, ThrottledLine>();
  const say = (key: string, write: (text: string) => void, text: string) => {
    let line = lines.get(key);
    if (!line) {
      if (lines.size >= MAX_PLACES) lines.clear();
      lines.set(key, (line = new ThrottledLine(ESCAPED_LOG_EVERY_MS)));
    }
    line.say(write, text);
  };
  const escaped = (thrown: unknown, place: string, how: string) => {
    count();
    say(
      place,
      (text) => log().error(text, { event: "hook-failed", hook: "escaped", place }),
      `hooks: an error escaped hook code (${how}) at ${place}: ${describeThrown(thrown)}; lb goes on serving`,
    );
  };
  process.on("uncaughtException", (error) => {
    const place = hookPlace(error);
    if (place) return escaped(error, place, "thrown from a timer or callback it set up");
    log().error(`uncaught error in lb itself (not hook code): ${stackOf(error)}; exiting (${EXIT_INTERNAL_ERROR}) to be restarted`, { event: "crash" });
    exit(EXIT_INTERNAL_ERROR);
  });
  process.on("unhandledRejection", (reason) => {
    const place = hookPlace(reason);
    if (place) return escaped(reason, place, "a rejected promise nobody handled");
    say("lb", (text) => log().error(text), `unhandled rejection (not from hook code): ${stackOf(reason)}`);
  });
}

function stackOf(thrown: unknown): string {
  const stack = (thrown as { stack?: unknown } | null | undefined)?.stack;
  return typeof stack === "string" ? stack : describeThrown(thrown);
}
