/** Pieces of a request that policies key on: a cookie's value, and the hash key an operator chose. */
import type { HashKey } from "../config/hash-key.ts";
import type { RequestContext } from "./policy.ts";

/** The value of one cookie from the Cookie header(s), or undefined. */
export function cookieValue(headers: Headers, name: string): string | undefined {
  const header = headers.get("cookie");
  if (!header) return undefined;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/** The request's key, or undefined when it has none (no such header or cookie). */
export function keyOf(key: HashKey, request: RequestContext): string | undefined {
  switch (key.kind) {
    case "ip":
      return request.clientIp;
    case "path": {
      const query = request.path.indexOf("?");
      return query === -1 ? request.path : request.path.slice(0, query);
    }
    case "header":
      return request.headers.get(key.name) ?? undefined;
    case "cookie":
      return cookieValue(request.headers, key.name);
  }
}
