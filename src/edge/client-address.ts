/**
 * The real client address: the one function that decides it. Rate limits, allow and deny lists, the `ip` hash key,
 * the access log, the forwarded headers and the header placeholders all use what it returns, never the peer itself.
 *
 * `peer` is the connection's address: the TCP peer, or the address a PROXY protocol header carried (the listener
 * feeds whichever it has; this function does not care which). When the peer is one of --trusted-proxies, the client
 * is the right-most address of X-Forwarded-For (else of Forwarded's for=) that is not itself trusted, as nginx's
 * real_ip_recursive and Caddy's trusted_proxies find it; from any other peer those headers change nothing.
 */
import { type Cidr, inRanges, parseIp } from "../net/ip.ts";

export interface ClientAddress {
  /** The client's address. */
  ip: string;
  /**
   * The X-Forwarded-For value the backend gets; undefined: the client's own with `ip` appended (lb without
   * --trusted-proxies, as nginx and HAProxy do).
   */
  forwardedFor?: string;
  /** The peer is not one of --trusted-proxies: a Forwarded field it sent is dropped like its X-Forwarded-For. */
  untrusted?: true;
}

/** `trusted` null: no --trusted-proxies, nothing to look at (the common case costs one comparison). */
export function clientAddress(peer: string, headers: Headers, trusted: readonly Cidr[] | null): ClientAddress {
  if (trusted === null) return { ip: peer };
  // From an untrusted peer the chain it sent is dropped, not passed on: the backend sees only what lb vouches for.
  if (!inRanges(peer, trusted)) return { ip: peer, forwardedFor: peer, untrusted: true };
  const xff = headers.get("x-forwarded-for");
  const chain = xff !== null ? xff.split(",") : forwardedFor(headers.get("forwarded"));
  // Walking right to left: each hop is vouched for by the trusted one after it; `verified` is what lb passes on.
  const verified = [peer];
  let client = peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    const address = hopAddress(chain[i]!);
    // A garbled entry from a trusted hop: the hop after it is the best lb knows.
    if (address === null) break;
    client = address;
    verified.unshift(address);
    if (!inRanges(address, trusted)) break;
  }
  return { ip: client, forwardedFor: verified.join(", ") };
}

/** The for= values of a Forwarded header (RFC 7239), in order; [] when there is none. */
function forwardedFor(header: string | null): string[] {
  if (header === null) return [];
  const hops: string[] = [];
  for (const element of header.split(",")) {
    const match = /(?:^|;)\s*for\s*=\s*("[^"]*"|[^;\s]*)/i.exec(element);
    hops.push(match ? match[1]!.replace(/^"(.*)"$/, "$1") : "");
  }
  return hops;
}

/** An entry's address without a port or brackets ("[2001:db8::1]:443", "10.0.0.1:80"); null when it is no address. */
function hopAddress(entry: string): string | null {
  let text = entry.trim();
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end === -1) return null;
    text = text.slice(1, end);
  }
  else if (/^[\d.]+:\d+$/.test(text)) text = text.slice(0, text.indexOf(":"));
  return parseIp(text) === null ? null : text;
}
