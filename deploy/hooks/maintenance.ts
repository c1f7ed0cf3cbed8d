/**
 * A maintenance page: while the file /etc/lb/maintenance exists (or LB_MAINTENANCE_FILE names another), or
 * LB_MAINTENANCE=1 is set, every request gets a 503 page with Retry-After, from lb itself; /healthz still reaches
 * the backends, so monitoring sees them. `touch /etc/lb/maintenance` starts it, `rm` ends it, no reload needed.
 */
import { existsSync } from "node:fs";
import type { HookContext } from "./lb-hooks";

const FLAG_FILE = process.env.LB_MAINTENANCE_FILE ?? "/etc/lb/maintenance";
const RETRY_AFTER_S = 300;
const PAGE = `<!doctype html>
<title>Down for maintenance</title>
<h1>Down for maintenance</h1>
<p>We'll be back shortly. Please try again in a few minutes.</p>
`;

export function onRequest(ctx: HookContext): Response | void {
  if (ctx.path.split("?", 1)[0] === "/healthz" || !inMaintenance()) return;
  return new Response(PAGE, {
    status: 503,
    headers: { "content-type": "text/html; charset=utf-8", "retry-after": String(RETRY_AFTER_S), "cache-control": "no-store" },
  });
}

/** One stat a request (microseconds): cheap enough, and the page goes up or down the moment the file does. */
function inMaintenance(): boolean {
  return process.env.LB_MAINTENANCE === "1" || existsSync(FLAG_FILE);
}
