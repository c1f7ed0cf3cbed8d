/** The ctx a request's hooks share: what lb decided so far, open to the hooks to change. */
import type { HookContext } from "./lb-hooks.d.ts";

export interface RequestFacts {
  requestId: string;
  clientIp: string;
  /** The pool lb's routes chose, or null. */
  pool: string | null;
}

export function createHookContext(request: Request, { requestId, clientIp, pool }: RequestFacts): HookContext {
  const url = new URL(request.url);
  return { request, requestId, clientIp, pool, backend: null, path: url.pathname + url.search, headers: new Headers(request.headers) };
}
