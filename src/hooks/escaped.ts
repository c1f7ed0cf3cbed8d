/**
 * Errors that escape hook code: thrown from a timer or callback a hook set up, or a promise it left rejected with
 * nobody to handle it. No call of lb's surrounds that code, so they reach the process, where these handlers tell them
 * by their stack (a frame in the hooks file or a module it imports: the bundle's source map names them), log and
 * count them, and let lb go on serving.
 *
 * An uncaught exception whose stack runs through lb's own code is lb's bug: a callback of lb's stopped half-way,
 * and what it left half-done (a counter, a pool's state, a connection) cannot be trusted. That is logged with its
 * stack and the process exits, so a supervisor restarts it (with --workers, the primary restarts the worker). One
 * with no stack to tell by (hook code may throw a string; lb throws only Errors) or only Bun's and packages' frames is
 * taken as the hooks' when hooks are loaded, at an unknown place, and lb goes on; so is such a rejection. lb's own
 * unhandled rejections are logged and lb goes on: the code that made the promise has run to its end, nothing was cut
 * short.
 */
import { resolve } from "node:path";
import { type Logger, ThrottledLine } from "../log/log.ts";
import { describeThrown, hooksLoaded, isHookSource } from "./load.ts";

/** sysexits' EX_SOFTWARE: lb's own uncaught error (a crash, not a startup problem: those exit 1 or 2). */
export const EXIT_INTERNAL_ERROR = 70;
/** At most one line per place this often (a hook that leaves a failing timer on every request must not flood the log). */
const ESCAPED_LOG_EVERY_MS = 1000;
/** Places remembered for throttling; past that they start over (a hooks file fails in few places). */
const MAX_PLACES = 100;

/** A stack frame: "at name (file:line:col)" or "at file:line:col". */
const FRAME = /^\s*at (?:.*\()?(.+?):(\d+):(\d+)\)?$/;
/**
 * Where lb's own code lives: the checkout it runs from (its packages included), or the compiled binary's embedded
 * file system, whose modules Bun names /$bunfs/root/....
 */
const OWN_CODE = import.meta.dir.startsWith("/$bunfs/") ? "/$bunfs/" : `${resolve(import.meta.dir, "../..")}/`;

/** The files named by `thrown`'s stack frames, in order; none when it has no stack (a value that is not an Error). */
function framesOf(thrown: unknown): { file: string; line: string; column: string }[] {
  const stack = (thrown as { stack?: unknown } | null | undefined)?.stack;
  if (typeof stack !== "string") return [];
  return stack.split("\n").flatMap((text) => {
    const frame = FRAME.exec(text);
    return frame ? [{ file: frame[1]!, line: frame[2]!, column: frame[3]! }] : [];
  });
}

/** Whether `thrown` comes from lb's own code: a frame of its stack is in lb's files (and none in hook code). */
export function fromOwnCode(thrown: unknown, isHookCode: (file: string) => boolean = isHookSource): boolean {
  const frames = framesOf(thrown);
  return !frames.some((frame) => isHookCode(frame.file)) && frames.some((frame) => resolve(frame.file).startsWith(OWN_CODE));
}

/**
 * Where in hook code `thrown` comes from: the absolute file, line and column of the first frame of its stack in
 * the hooks file or a module it imports; null when no frame is (lb's own code, Bun's internals, a value that is not
 * an Error and so has no stack).
 */
export function hookPlace(thrown: unknown, isHookCode: (file: string) => boolean = isHookSource): string | null {
  const frame = framesOf(thrown).find(({ file }) => isHookCode(file));
  return frame ? `${resolve(frame.file)}:${frame.line}:${frame.column}` : null;
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
    const place = hookPlace(error) ?? (hooksLoaded() && !fromOwnCode(error) ? UNKNOWN_PLACE : null);
    if (place) return escaped(error, place, "thrown from a timer or callback it set up");
    log().error(`uncaught error in lb itself (not hook code): ${stackOf(error)}; exiting (${EXIT_INTERNAL_ERROR}) to be restarted`, { event: "crash" });
    exit(EXIT_INTERNAL_ERROR);
  });
  process.on("unhandledRejection", (reason) => {
    const place = hookPlace(reason) ?? (hooksLoaded() && !fromOwnCode(reason) ? UNKNOWN_PLACE : null);
    if (place) return escaped(reason, place, "a rejected promise nobody handled");
    say("lb", (text) => log().error(text), `unhandled rejection (not from hook code): ${stackOf(reason)}`);
  });
}

/** Where an error with no stack to tell by (hook code threw a string, say) came from. */
const UNKNOWN_PLACE = "an unknown place (what was thrown has no stack: throw Errors, not other values)";

function stackOf(thrown: unknown): string {
  const stack = (thrown as { stack?: unknown } | null | undefined)?.stack;
  return typeof stack === "string" ? stack : describeThrown(thrown);
}
