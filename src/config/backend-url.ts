/** Validation of backend addresses: the only places lb will ever send a request (or, for tcp://, relay bytes). */

/** A backend lb relays bytes to ([[tcp]], src/l4/), not HTTP requests. */
export function isTcpBackend(url: string): boolean {
  return url.startsWith("tcp://");
}

/** A pool relays bytes when every backend it lists is tcp:// (a pool is one kind or the other: config/tcp.ts). */
export function isTcpPool(backends: readonly BackendSpec[]): boolean {
  return backends.length > 0 && backends.every(({ url }) => isTcpBackend(url));
}

export interface BackendSpec {
  /** The origin requests go to, e.g. `http://10.0.0.5:8080`. */
  url: string;
  /** Share of traffic relative to the others (round robin, least-connections, random, hash). */
  weight: number;
  /** The host is a DNS name to re-resolve: one backend per address it has (see pool/discovery.ts). */
  resolve?: boolean;
}

export type SpecCheck = { spec: BackendSpec } | { error: string };

const MAX_WEIGHT = 1000;

/**
 * Normalises a backend address to its origin (`http://host:port`), with options in the fragment
 * (`http://app:8080#weight=3`). A path or query is refused rather than silently dropped, so a typo such as
 * `http://app:8080/api` is not mistaken for a path prefix.
 */
export function checkBackendUrl(text: string, options: { weight?: unknown; resolve?: unknown } = {}): SpecCheck {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { error: `"${text}" is not a URL; write it like http://10.0.0.5:8080` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:" && url.protocol !== "tcp:") {
    return { error: `"${text}" uses ${url.protocol.slice(0, -1)}; backends must be http://, https:// or tcp://` };
  }
  if (url.protocol === "tcp:" && !url.port) return { error: `"${text}" has no port; a tcp:// backend needs one (tcp://10.0.0.5:5432)` };
  if (!url.hostname) return { error: `"${text}" has no host; write it like http://10.0.0.5:8080` };
  if (url.username || url.password) return { error: `"${text}" contains credentials; lb does not send them` };
  if ((url.pathname !== "/" && url.pathname !== "") || url.search) {
    return { error: `"${text}" has a path or query; give only scheme, host and port (http://host:port)` };
  }
  const fragment = new URLSearchParams(url.hash.slice(1));
  for (const key of fragment.keys()) {
    if (key !== "weight" && key !== "resolve") {
      return { error: `"${text}": unknown backend option "${key}"; known: weight, resolve (e.g. #weight=3&resolve)` };
    }
  }
  const weight = parseWeight(options.weight ?? fragment.get("weight") ?? 1);
  if (weight === null) return { error: `"${text}": ${WEIGHT_PROBLEM}` };
  const resolve = options.resolve ?? (fragment.has("resolve") && fragment.get("resolve") !== "false");
  if (typeof resolve !== "boolean") return { error: `"${text}": resolve must be true or false` };
  if (resolve && isIpLiteral(url.hostname)) return { error: `"${text}": resolve needs a DNS name, not an IP address` };
  // A tcp:// URL has no origin ("null"): the same host:port form is built by hand.
  const origin = url.protocol === "tcp:" ? `tcp://${url.host}` : url.origin;
  return { spec: resolve ? { url: origin, weight, resolve } : { url: origin, weight } };
}

export const WEIGHT_PROBLEM = `weight must be a whole number from 1 to ${MAX_WEIGHT}`;

export function parseWeight(value: unknown): number | null {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_WEIGHT ? n : null;
}

function isIpLiteral(hostname: string): boolean {
  return hostname.startsWith("[") || /^\d+\.\d+\.\d+\.\d+$/.test(hostname);
}

/** A host as it is written in a URL: IPv6 addresses in brackets (`[::1]`), names and IPv4 as they are. */
export function hostInUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
