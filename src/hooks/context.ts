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

const TAKEN_HEADERS = Symbol("the headers a hook took");

/** A ctx as lb made it: it can tell whether a hook took (or replaced) the headers. */
type LbHookContext = HookContext & { [TAKEN_HEADERS](): unknown };

/**
 * The ctx for one request. Its headers are copied from the client's the first time a hook reads them: most hooks
 * never do, and the copy costs a Headers of its own per request (about 4 µs, as much as lb's own work on a request).
 */
export function createHookContext(request: Request, facts: RequestFacts): HookContext {
  let headers: unknown;
  const ctx: LbHookContext = {
    request,
    ...facts,
    backend: null,
    get headers(): Headers {
      return (headers ??= new Headers(request.headers)) as Headers;
    },
    // Replacing them is refused (a hook changes them in place), but the new value is kept so that it can be.
    set headers(value: Headers) {
      headers = value;
    },
    [TAKEN_HEADERS]: () => headers,
  };
  return ctx;
}

/** The headers a hook took through ctx (a copy, changed or not, or whatever it put there); undefined when it never looked. */
export function takenHeaders(ctx: HookContext): unknown {
  return (ctx as LbHookContext)[TAKEN_HEADERS]?.();
}
