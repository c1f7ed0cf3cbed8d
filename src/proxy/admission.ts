/**
 * What lb refuses before it routes a request, whatever pool it would go to: past the connection limit, CONNECT (lb
 * is not a forward proxy), a target with a fragment, an invalid Host, a GET or HEAD with a body. Checked first, so routes and hooks only ever
 * see requests lb will forward.
 */
import type { ScannedFields } from "./headers.ts";
import type { ClientConnection } from "./trip.ts";

export interface Refusal {
  status: number;
  detail: string;
  headers?: Record<string, string>;
  /** Counted in lb_requests_rejected_total under this reason. */
  reason?: string;
}

/**
 * Why lb refuses this request, or null when it may go on. `path`: its target as received (trip.ts pathOf, which keeps
 * any fragment); `maxConnections` 0: no limit.
 */
export function refusal(
  request: Request,
  fields: ScannedFields,
  path: string,
  client: ClientConnection,
  maxConnections: number,
): Refusal | null {
  if (maxConnections > 0 && client.openRequests() > maxConnections) {
    return { status: 503, detail: "lb is at its connection limit", headers: { "retry-after": "1", connection: "close" }, reason: "max-connections" };
  }
  // A forward proxy's CONNECT would ask lb to open a tunnel to a host of the client's choosing.
  const { method } = request;
  if (method === "CONNECT") {
    return { status: 405, detail: "lb does not tunnel CONNECT", headers: { allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" } };
  }
  // A fragment never belongs in a request target (RFC 9110 §4.2.4; HAProxy answers 400): a backend could read what
  // follows "#" as the path lb routed by.
  if (path.includes("#")) return { status: 400, detail: "a request target may not carry a fragment (#)" };
  // RFC 9112 §3.2: a request with several Host headers or an invalid one gets a 400 (backends build URLs from it).
  const { host } = fields;
  if (host !== null && !VALID_HOST.test(host)) return { status: 400, detail: "invalid Host header" };
  if (bodyDropped(method, fields)) {
    return { status: 400, detail: "lb cannot pass on a body sent with GET or HEAD; send it with POST" };
  }
  return null;
}

/**
 * A GET or HEAD that came with a body: Bun.serve reads and drops it (the handler gets no body), so forwarding the
 * request would change its meaning without a word. HAProxy passes such bodies on; lb refuses them instead.
 */
function bodyDropped(method: string, { transferEncoding, contentLength }: ScannedFields): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  return transferEncoding !== null || Number(contentLength ?? 0) > 0;
}

/** host[:port] or [ipv6][:port]; Bun joins repeated Host headers with ", ", which this refuses too. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]*)(?::\d*)?$/;
