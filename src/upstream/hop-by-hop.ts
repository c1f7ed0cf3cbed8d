/** Fields that describe one connection, not the message (RFC 9110 §7.6.1): a proxy consumes them on both sides. */

/**
 * Hop-by-hop fields, plus the legacy Keep-Alive and Proxy-Connection. TE is dropped too: lb does not pass trailers on,
 * so it must not promise them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
]);

/** An RFC 9110 token: what a field name may be. Anything else in Connection is not a field to remove. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The field names a Connection value lists (lowercase), minus `keep`: fields that must survive any such list. */
export function connectionListed(connection: string, keep: ReadonlySet<string> = new Set()): Set<string> {
  const listed = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    if (TOKEN.test(name) && !keep.has(name)) listed.add(name);
  }
  return listed;
}
