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

/** The characters of an RFC 9110 token (§5.6.2), by character code. */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+.^_`|~-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHARS[c.charCodeAt(0)] = 1;

/**
 * Whether `text` (from `from` to `to`) is a non-empty RFC 9110 token: what a field name may be. A scan, not a
 * regular expression: it runs on every field of every answer.
 */
export function isToken(text: string, from = 0, to = text.length): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c > 127 || TOKEN_CHARS[c] === 0) return false;
  }
  return true;
}

/** The field names a Connection value lists (lowercase), minus `keep`: fields that must survive any such list. */
export function connectionListed(connection: string, keep: ReadonlySet<string> = new Set()): Set<string> {
  const listed = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    // Anything else in Connection is not a field to remove.
    if (isToken(name) && !keep.has(name)) listed.add(name);
  }
  return listed;
}
