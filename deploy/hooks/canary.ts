/**
 * Canary by header: a request with `x-canary: 1` goes to the pool "canary" (configure one); every other request
 * goes where lb's routes send it.
 *   lb --hooks deploy/hooks/canary.ts ...
 */
import type { HookContext } from "./lb-hooks";

export function onRequest(ctx: HookContext): void {
  if (ctx.request.headers.get("x-canary") === "1") ctx.pool = "canary";
}
