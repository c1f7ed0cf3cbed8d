/**
 * Calling a hook on the hot path with a time budget. A hook that returns at once costs a try/catch and no timer; a
 * promise gets one timer, and past the budget it is abandoned: its late result is ignored, its late rejection
 * swallowed, so it can never become an unhandledRejection. A synchronous hook cannot be interrupted (JavaScript has
 * one thread); the budget only bounds waiting for a promise.
 */
import { formatDuration } from "../config/duration.ts";
import { describeThrown } from "./load.ts";

export type HookOutcome<T> = { ok: true; value: T } | { ok: false; reason: "threw" | "timed out"; message: string };

/**
 * Runs `call` (a hook applied to its arguments). Returns the outcome itself when the hook returned or threw at once,
 * so the caller need not await; a promise of it when the hook returned one.
 */
export function runHook<T>(call: () => T | PromiseLike<T>, budgetMs: number): HookOutcome<T> | Promise<HookOutcome<T>> {
  let value: T | PromiseLike<T>;
  try {
    value = call();
  } catch (error) {
    return threw(error);
  }
  return isThenable(value) ? withinBudget(value, budgetMs) : { ok: true, value };
}

function withinBudget<T>(pending: PromiseLike<T>, budgetMs: number): Promise<HookOutcome<T>> {
  return new Promise((settle) => {
    const timer = setTimeout(() => settle({ ok: false, reason: "timed out", message: `took longer than ${formatDuration(budgetMs)}` }), budgetMs);
    pending.then(
      (value) => {
        clearTimeout(timer);
        settle({ ok: true, value });
      },
      (error: unknown) => {
        clearTimeout(timer);
        settle(threw(error));
      },
    );
  });
}

function threw(error: unknown): HookOutcome<never> {
  return { ok: false, reason: "threw", message: describeThrown(error) };
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}
