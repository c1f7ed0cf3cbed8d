/**
 * Which pool a request goes to: the config's routes in order, the first whose conditions all hold; a request no route
 * takes goes to the fallback pool (lb without routes), or nowhere (a 404 from lb). Pure: no sockets, no clock.
 */
import type { RouteSpec } from "../config/types.ts";

export interface RouteMatch {
  pool: string;
  /** The path and query to forward: the request's, or with the route's prefix stripped. */
  path: string;
  /** The route that matched; null for the fallback pool. */
  route: RouteSpec | null;
}

/** What a route looks at; the path is the one lb forwards (as received, not decoded). */
export interface RoutedRequest {
  method: string;
  headers: Headers;
  /** Its Host field as received (null when none): read once at the trip's start, not again per route table. */
  host: string | null;
  path: string;
}

export class RouteTable {
  /** Whether a route looks at the host: only then is the Host header read and normalised. */
  readonly #usesHost: boolean;

  constructor(
    private readonly routes: readonly RouteSpec[],
    private readonly fallback: string | null,
  ) {
    this.#usesHost = routes.some((route) => Boolean(route.host));
  }

  match(request: RoutedRequest): RouteMatch | null {
    const host = this.#usesHost ? hostName(request.host) : "";
    for (const route of this.routes) {
      if (matches(route, request, host)) return { pool: route.pool, path: route.stripPrefix ? stripPrefix(request.path, route.pathPrefix!) : request.path, route };
    }
    return this.fallback === null ? null : { pool: this.fallback, path: request.path, route: null };
  }
}

function matches(route: RouteSpec, request: RoutedRequest, host: string): boolean {
  if (route.host !== undefined && !hostMatches(route.host, host)) return false;
  if (route.pathPrefix !== undefined && !request.path.startsWith(route.pathPrefix)) return false;
  if (route.methods && !route.methods.includes(request.method)) return false;
  return !route.headers || route.headers.every(([name, value]) => request.headers.get(name) === value);
}

/** "*.example.com" takes any name under example.com (a.example.com, a.b.example.com) but not example.com itself, as nginx. */
function hostMatches(pattern: string, host: string): boolean {
  if (!pattern.startsWith("*.")) return host === pattern;
  const suffix = pattern.slice(1);
  return host.length > suffix.length && host.endsWith(suffix);
}

/** The Host header's name: lower case, without the port or a trailing dot; "" when there is none. */
export function hostName(header: string | null): string {
  if (!header) return "";
  if (header === lastHost) return lastName;
  const name = header.startsWith("[") ? header.slice(0, header.indexOf("]") + 1) : header.replace(/:\d*$/, "");
  lastHost = header;
  lastName = name.toLowerCase().replace(/\.$/, "");
  return lastName;
}

/** The last Host read and its name: a client sends the same one request after request (3 strings a request saved). */
let lastHost = "";
let lastName = "";

/** "/api/users?x=1" without "/api/" is "/users?x=1"; what is left always starts with "/". */
export function stripPrefix(path: string, prefix: string): string {
  const rest = path.slice(prefix.length);
  return rest.startsWith("/") ? rest : `/${rest}`;
}
