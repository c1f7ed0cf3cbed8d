/**
 * A/B by cookie: a client whose cookie `ab` is "b" goes to the pool "b"; one with "a" goes where lb's routes send
 * it. A client without the cookie is put in a group at random, half and half: its first request already goes there,
 * and the answer sets the cookie so its next requests follow.
 */
import type { HookContext } from "./lb-hooks";

const COOKIE = "ab";
const POOL_B = "b";
const THIRTY_DAYS_S = 30 * 24 * 60 * 60;

/** Groups given to clients that came without the cookie, until their answer carries it (weak: no leak). */
const assigned = new WeakMap<HookContext, "a" | "b">();

export function onRequest(ctx: HookContext): void {
  const cookie = cookieValue(ctx.request.headers.get("cookie"), COOKIE);
  const group = cookie === "a" || cookie === "b" ? cookie : assign(ctx);
  if (group === "b") ctx.pool = POOL_B;
}

function assign(ctx: HookContext): "a" | "b" {
  const group = Math.random() < 0.5 ? "a" : "b";
  assigned.set(ctx, group);
  return group;
}

export function onResponse(ctx: HookContext, response: Response): void {
  const group = assigned.get(ctx);
  if (group) response.headers.append("set-cookie", `${COOKIE}=${group}; Path=/; Max-Age=${THIRTY_DAYS_S}; SameSite=Lax`);
}

/** The value of one cookie in a Cookie header ("a=1; ab=b"), or undefined. */
function cookieValue(header: string | null, name: string): string | undefined {
  for (const pair of header?.split(";") ?? []) {
    const [key, value] = pair.trim().split("=", 2);
    if (key === name) return value;
  }
  return undefined;
}
