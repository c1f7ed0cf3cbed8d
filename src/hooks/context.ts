/** The ctx a request's hooks share: what lb decided so far, open to the hooks to change. */
import type { HookContext } from "./lb-hooks.d.ts";

export interface RequestFacts {
  requestId: string;
  clientIp: string;
  /** The pool lb's routes chose, or null. */
  pool: string | null;
  /** The path and query lb would send (a route may have stripped a prefix). */
  path: string;
}

/**
 * A ctx as lb makes it: a class, so that making one per request costs no function (an object literal with a getter,
 * a setter and a method made three, with their scope). Its headers are copied from the client's the first time a hook
 * reads them: most hooks never do, and the copy costs a Headers of its own per request (about 4 µs, as much as lb's
 * own work on a request).
 */
class LbHookContext implements HookContext {
  backend: string | null = null;
  #headers: unknown = undefined;

  constructor(
    readonly request: Request,
    readonly requestId: string,
    readonly clientIp: string,
    public pool: string | null,
    public path: string,
  ) {}

  get headers(): Headers {
    return (this.#headers ??= new Headers(this.request.headers)) as Headers;
  }

  // Replacing them is refused (a hook changes them in place), but the new value is kept so that it can be.
  set headers(value: Headers) {
    this.#headers = value;
  }

  /** What a hook took through ctx.headers (a copy, changed or not, or whatever it put there); undefined when none. */
  static taken(ctx: HookContext): unknown {
    return #headers in ctx ? ctx.#headers : undefined;
  }
}

/** The ctx for one request. */
export function createHookContext(request: Request, facts: RequestFacts): HookContext {
  return new LbHookContext(request, facts.requestId, facts.clientIp, facts.pool, facts.path);
}

/** The headers a hook took through ctx (a copy, changed or not, or whatever it put there); undefined when it never looked. */
export function takenHeaders(ctx: HookContext): unknown {
  return LbHookContext.taken(ctx);
}
