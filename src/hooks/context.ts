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

export function createHookContext(request: Request, facts: RequestFacts): HookContext {
  return { request, ...facts, backend: null, headers: new Headers(request.headers) };
}
