/**
 * An auth check: requests for /admin and below need `Authorization: Bearer <token>`, the token being the
 * environment's LB_HOOK_TOKEN; others get 401. The file refuses to load without a token (lb will not start), so a
 * forgotten variable never leaves /admin open. The token is never logged, echoed, or passed on to the backends.
 */
import { timingSafeEqual } from "node:crypto";
import type { HookContext } from "./lb-hooks";

const TOKEN = process.env.LB_HOOK_TOKEN;
if (!TOKEN) throw new Error("set LB_HOOK_TOKEN to the token /admin/ requires");
const EXPECTED = Buffer.from(TOKEN);

export function onRequest(ctx: HookContext): Response | void {
  if (!isProtected(ctx.path)) return;
  if (!isAuthorized(ctx.request.headers.get("authorization"))) {
    return new Response("Unauthorized\n", {
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="admin"', "content-type": "text/plain; charset=utf-8" },
    });
  }
  ctx.headers.delete("authorization"); // the backends behind /admin/ need not see lb's token
}

/**
 * /admin, /admin/… — compared decoded, in lower case and with slashes collapsed, since a backend may well serve
 * /%61dmin/, /ADMIN/ or //admin/ as /admin/. A path that does not decode is treated as protected.
 */
function isProtected(path: string): boolean {
  let pathname: string;
  try {
    // Repeated slashes collapsed too: many servers take //admin/ for /admin/.
    pathname = decodeURIComponent(path.split("?", 1)[0]!).toLowerCase().replace(/\/{2,}/g, "/");
  } catch {
    return true;
  }
  return pathname === "/admin" || pathname.startsWith("/admin/");
}

/** "Bearer" in any case (RFC 9110 §11.1); the token compared in constant time, so timing reveals nothing of it. */
function isAuthorized(header: string | null): boolean {
  const given = Buffer.from(/^bearer +(\S+)$/i.exec(header ?? "")?.[1] ?? "");
  return given.length === EXPECTED.length && timingSafeEqual(given, EXPECTED);
}
