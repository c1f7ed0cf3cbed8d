/**
 * What keeps a web page the operator happens to open from driving the admin API through their browser. Without a
 * token the API trusts whoever can reach its loopback port — and a browser on the same machine can, for any page:
 * - DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and reads the API as its own origin.
 *   Its requests carry `Host: attacker.example`, so only IP literals and localhost names are accepted as Host.
 * - Cross-site requests: a form or a text/plain fetch can POST without CORS asking first. Changes are refused when
 *   the browser says the request comes from another site or origin (Sec-Fetch-Site, Origin), and a JSON body must
 *   be labelled application/json, which no form and no "simple" cross-origin request can send.
 * A token does the first job by itself (no page can read or send it), so with one the Host check is off: the API may
 * then be reached by any name. The cross-site checks stay on.
 */
import { isIP } from "node:net";

const CHANGES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Why the request is refused before it is looked at (403 or 415), or null when it may go on. */
export function refusal(request: Request, tokenRequired: boolean): { status: 403 | 415; error: string } | null {
  const host = request.headers.get("host") ?? "";
  if (!tokenRequired && !isLocalName(hostname(host))) {
    return { status: 403, error: `Host "${host}" is not this machine's: without a token the admin API answers to IP addresses and localhost only` };
  }
  if (!CHANGES.has(request.method)) return null;
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    return { status: 403, error: `refused a ${site} request: the admin API takes changes from its own page and from lb's CLI only` };
  }
  const origin = request.headers.get("origin");
  if (origin !== null && originHost(origin) !== host.toLowerCase()) {
    return { status: 403, error: `refused a request from ${origin}: the admin API takes changes from its own page and from lb's CLI only` };
  }
  return null;
}

/** Whether a body the API reads as JSON says it is JSON (a form or a text/plain fetch cannot). */
export function isJson(request: Request): boolean {
  return /^application\/json\s*(;|$)/i.test(request.headers.get("content-type") ?? "");
}

/** "example.com:9090" → "example.com"; "[::1]:9090" → "::1". */
function hostname(host: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(host);
  if (bracketed) return bracketed[1]!;
  return host.replace(/:\d*$/, "").toLowerCase();
}

/** An address, or a localhost name (RFC 6761: always this machine, never one an attacker's DNS can point). */
function isLocalName(name: string): boolean {
  return isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost");
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return null;
  }
}
