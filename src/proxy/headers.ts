/** Header rewriting for one hop: what a proxy must drop, and what it adds so the backend knows who asked. */

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection): they describe one
 * connection, so a proxy consumes them instead of passing them on. TE is dropped too: lb's upstream client does not
 * speak trailers, so it must not promise them.
 */
export const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
] as const;

/** An RFC 9110 token: what a header name may be. Anything else in Connection is not a header to remove. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Removes the hop-by-hop headers and every header the Connection header names. */
export function stripHopByHop(headers: Headers): Headers {
  const connection = headers.get("connection");
  if (connection) {
    for (const token of connection.split(",")) {
      const name = token.trim();
      if (TOKEN.test(name)) headers.delete(name);
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
  return headers;
}

export interface ClientInfo {
  /** The client's address as lb saw it (the TCP peer). */
  ip: string;
  /** The scheme the client used to reach lb. */
  proto: "http" | "https";
}

/**
 * The headers sent to the backend: the client's own (its Host included) minus hop-by-hop ones, with
 * X-Forwarded-For appended to and X-Forwarded-Proto/Host set from what lb itself saw.
 */
export function upstreamRequestHeaders(incoming: Headers, client: ClientInfo): Headers {
  const headers = stripHopByHop(new Headers(incoming));
  const priorFor = headers.get("x-forwarded-for");
  headers.set("x-forwarded-for", priorFor ? `${priorFor}, ${client.ip}` : client.ip);
  headers.set("x-forwarded-proto", client.proto);
  const host = headers.get("host");
  if (host) headers.set("x-forwarded-host", host);
  return headers;
}

/** The backend's response headers as the client gets them: every one (repeated Set-Cookie too) but hop-by-hop. */
export function downstreamResponseHeaders(upstream: Headers): Headers {
  return stripHopByHop(new Headers(upstream));
}
