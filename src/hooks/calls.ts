/**
 * A request's hooks around its trip: onRequest before lb picks a backend (what it changes in ctx becomes the trip's
 * plan), onResponse before the answer goes out. A hook that throws, overruns its budget or asks for something lb
 * cannot do gets the client lb's own error (500 before the trip, 502 after) and a log line; lb keeps serving.
 */
import { ThrottledLine, type Logger } from "../log/log.ts";
import { errorResponse } from "../proxy/responses.ts";
import type { Trip } from "../proxy/trip.ts";
import { createHookContext, takenHeaders } from "./context.ts";
import type { HookContext } from "./lb-hooks.d.ts";
import type { LoadedHooks } from "./load.ts";
import { type HookOutcome, runHook } from "./run.ts";

/** At most one line per kind of failure this often (a hook broken for every request must not flood the log). */
const FAILURE_LOG_EVERY_MS = 1000;

type FailureKind = "threw" | "timed out" | "refused";

/** An origin-form request target (RFC 9112 §3.2.1): "/" then visible ASCII. */
const REQUEST_TARGET = /^\/[\x21-\x7E]*$/;

/** What onRequest made of the request: a response for the client (the hook's own, or lb's 500), or its ctx to go on with. */
export type BeforeTrip = { response: Response } | { ctx: HookContext };

export class HookCalls {
  /** One throttle per hook and kind of failure, so one failing often does not hide another. */
  readonly #failures = new Map<string, ThrottledLine>();

  constructor(
    /** The hooks in force (a reload of the file swaps them). */
    private readonly hooks: () => LoadedHooks,
    private readonly budgetMs: () => number,
    private readonly log: Logger,
    /** Counts a failure of this hook (lb_hook_errors_total). */
    private readonly countFailure: (hook: string) => void,
  ) {}

  /** Runs onRequest on the trip (`pool`: what the routes chose); synchronous when the hook is. */
  beforeTrip(trip: Trip, pool: string | null): BeforeTrip | Promise<BeforeTrip> {
    const { onRequest } = this.hooks();
    const ctx = createHookContext(trip.request, { requestId: trip.requestId, clientIp: trip.source.ip, pool, path: trip.upstreamPath });
    if (!onRequest) return { ctx };
    const outcome = runHook(() => onRequest(ctx), this.budgetMs());
    return outcome instanceof Promise ? outcome.then((done) => this.#settle(trip, ctx, done)) : this.#settle(trip, ctx, outcome);
  }

  /** The trip's onResponse step, or undefined when the hooks have no onResponse. */
  onResponse(trip: Trip, ctx: HookContext): ((response: Response) => boolean | Promise<boolean>) | undefined {
    const { onResponse } = this.hooks();
    if (!onResponse) return undefined;
    return (response) => {
      const outcome = runHook(() => onResponse(ctx, response), this.budgetMs());
      return outcome instanceof Promise ? outcome.then((done) => this.#succeeded(trip, "onResponse", done)) : this.#succeeded(trip, "onResponse", outcome);
    };
  }

  /** lb's 500 for a hook whose choice cannot be carried out (an unknown pool, a backend not in it, a bad path). */
  refuse(trip: Trip, problem: string): Response {
    this.#failed(trip, "onRequest", "refused", problem);
    return this.#error(trip);
  }

  /** What onRequest's outcome means for the request; what it left in ctx is checked before anything is sent. */
  #settle(trip: Trip, ctx: HookContext, outcome: HookOutcome<void | Response>): BeforeTrip {
    if (!this.#succeeded(trip, "onRequest", outcome)) return { response: this.#error(trip) };
    const returned = (outcome as { value: unknown }).value;
    if (returned instanceof Response) {
      if (!returned.headers.has("x-request-id")) returned.headers.set("x-request-id", trip.requestId);
      return { response: returned };
    }
    if (returned !== undefined) return { response: this.refuse(trip, `returned ${typeof returned}, not a Response or nothing`) };
    // The path goes into the request line as it is: a space, CR or LF (or a character latin1 would turn into one)
    // would let a hook smuggle a second request to the backend. One it left as it was is the client's, as Bun read it.
    if (ctx.path !== trip.upstreamPath && (typeof ctx.path !== "string" || !REQUEST_TARGET.test(ctx.path))) {
      return { response: this.refuse(trip, `set path ${JSON.stringify(ctx.path)}: it must start with "/" and hold printable ASCII only (percent-encode the rest)`) };
    }
    const headers = takenHeaders(ctx);
    if (headers !== undefined && !(headers instanceof Headers)) {
      return { response: this.refuse(trip, "replaced ctx.headers with something that is not a Headers; change it in place") };
    }
    return { ctx };
  }

  #succeeded(trip: Trip, hook: string, outcome: HookOutcome<unknown>): boolean {
    if (!outcome.ok) this.#failed(trip, hook, outcome.reason, `${outcome.reason}: ${outcome.message}`);
    return outcome.ok;
  }

  #failed(trip: Trip, hook: string, kind: FailureKind, problem: string): void {
    this.countFailure(hook);
    const key = `${hook} ${kind}`;
    let line = this.#failures.get(key);
    if (!line) this.#failures.set(key, (line = new ThrottledLine(FAILURE_LOG_EVERY_MS)));
    line.say(
      (line) => this.log.error(line, { event: "hook-failed", hook, requestId: trip.requestId }),
      `hooks: ${hook} ${problem} (${trip.request.method} ${trip.path}, request ${trip.requestId})`,
    );
  }

  #error(trip: Trip): Response {
    return errorResponse(500, "a hook failed; lb's log says why", { "x-request-id": trip.requestId });
  }
}
