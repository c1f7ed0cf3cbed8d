/**
 * The PROXY protocol (haproxy.org's proxy-protocol.txt), versions 1 (a text line) and 2 (binary): the header an L4
 * balancer puts before a connection's first byte to say whom the connection is really from. Bytes only, no sockets:
 * decode what a connection's first reads hold (a header may arrive across several), encode one for a new connection.
 */
import { type IpBytes, formatIp, mapped, parseIPv4, parseIPv6, parseIp, unmapped } from "./ip.ts";

export type ProxyVersion = 1 | 2;

export interface Endpoint {
  address: string;
  port: number;
}

/** The connection's original ends, as the sender saw them. */
export interface ProxyAddresses {
  source: Endpoint;
  destination: Endpoint;
}

/**
 * What the first bytes of a connection hold: not enough yet; no valid header (refuse the connection); or a header of
 * `length` bytes (the connection's own data follows it). `addresses` is null when the header gives none to use: v2
 * LOCAL (the sender's own health check), v1 UNKNOWN, v2 UNSPEC or UNIX: the connection's own peer stands.
 */
export type Decoded =
  | { state: "incomplete" }
  | { state: "invalid"; reason: string }
  | { state: "complete"; version: ProxyVersion; addresses: ProxyAddresses | null; length: number };

/** The 12 bytes that open a version 2 header (a CRLF pair, NUL, "\r\nQUIT\n": no HTTP, TLS or SMTP starts so). */
export const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** The longest version 1 line, CRLF included (the spec's worst case: TCP6 with two full addresses and ports). */
export const V1_MAX_BYTES = 107;
const V2_FIXED_BYTES = 16;

const INCOMPLETE: Decoded = { state: "incomplete" };
const invalid = (reason: string): Decoded => ({ state: "invalid", reason });

/** Reads a header at the start of `bytes` (everything received so far). */
export function decodeProxyHeader(bytes: Uint8Array): Decoded {
  if (opensWith(bytes, V2_SIGNATURE)) return bytes.length < V2_FIXED_BYTES ? INCOMPLETE : decodeV2(bytes);
  if (opensWith(bytes, V1_PREFIX)) return bytes.length < V1_PREFIX.length ? INCOMPLETE : decodeV1(bytes);
  return invalid("no PROXY protocol header");
}

/** Whether `bytes` and `signature` agree as far as both go (so a short start may still become a header). */
function opensWith(bytes: Uint8Array, signature: Uint8Array): boolean {
  const n = Math.min(bytes.length, signature.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== signature[i]) return false;
  return true;
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function decodeV1(bytes: Uint8Array): Decoded {
  const end = lineEnd(bytes);
  if (end < 0) return bytes.length >= V1_MAX_BYTES ? invalid(`version 1 header without CRLF in its first ${V1_MAX_BYTES} bytes`) : INCOMPLETE;
  const line = String.fromCharCode(...bytes.subarray(0, end));
  const length = end + 2;
  const [, family, ...rest] = line.split(" ");
  if (family === "UNKNOWN") return { state: "complete", version: 1, addresses: null, length };
  if (family !== "TCP4" && family !== "TCP6") return invalid(`version 1 family "${family}" is not TCP4, TCP6 or UNKNOWN`);
  if (rest.length !== 4) return invalid(`version 1 ${family} header needs 4 fields (addresses and ports), has ${rest.length}`);
  const [sourceText, destinationText, sourcePort, destinationPort] = rest as [string, string, string, string];
  const parse = family === "TCP4" ? parseIPv4 : parseIPv6;
  for (const text of [sourceText, destinationText]) {
    if (parse(text)) continue;
    if (parseIp(text)) return invalid(`address family mismatch: ${text} in a ${family} header`);
    return invalid(`"${text}" is not an address`);
  }
  for (const port of [sourcePort, destinationPort]) {
    if (!PORT.test(port) || Number(port) > 65535) return invalid(`"${port}" is not a port`);
  }
  const source = { address: formatIp(parse(sourceText)!), port: Number(sourcePort) };
  const destination = { address: formatIp(parse(destinationText)!), port: Number(destinationPort) };
  return { state: "complete", version: 1, addresses: { source, destination }, length };
}

/** Where the first CRLF within the version 1 limit starts; -1 when there is none (yet). */
function lineEnd(bytes: Uint8Array): number {
  const last = Math.min(bytes.length, V1_MAX_BYTES) - 1;
  for (let i = V1_PREFIX.length; i < last; i++) if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) return i;
  return -1;
}

const LOCAL = 0x0;
const PROXY = 0x1;
const UNSPEC = 0x0;
const STREAM = 0x1;
/** Address family → the bytes its two addresses and ports take. */
const ADDRESS_BYTES: Record<number, { name: string; bytes: number }> = {
  0x1: { name: "INET", bytes: 12 },
  0x2: { name: "INET6", bytes: 36 },
  0x3: { name: "UNIX", bytes: 216 },
};

function decodeV2(bytes: Uint8Array): Decoded {
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0xf;
  if (version !== 2) return invalid(`version ${version} after the version 2 signature`);
  if (command !== LOCAL && command !== PROXY) return invalid(`unknown version 2 command ${command}`);
  const length = V2_FIXED_BYTES + ((bytes[14]! << 8) | bytes[15]!);
  if (bytes.length < length) return INCOMPLETE;
  // LOCAL: the sender speaks for itself (its health check); whatever follows is skipped.
  if (command === LOCAL) return { state: "complete", version: 2, addresses: null, length };
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0xf;
  if (family === UNSPEC) return { state: "complete", version: 2, addresses: null, length };
  const block = ADDRESS_BYTES[family];
  if (!block) return invalid(`unknown version 2 address family ${family}`);
  if (transport !== STREAM) return invalid(`version 2 transport ${transport} is not a stream (TCP)`);
  if (length - V2_FIXED_BYTES < block.bytes) {
    return invalid(`address family mismatch: ${block.name} needs ${block.bytes} address bytes, the header has ${length - V2_FIXED_BYTES}`);
  }
  // UNIX sockets have no address lb could use; TLVs after the address block are skipped.
  if (block.name === "UNIX") return { state: "complete", version: 2, addresses: null, length };
  const size = block.name === "INET" ? 4 : 16;
  const at = V2_FIXED_BYTES;
  const portAt = at + 2 * size;
  const source = { address: formatIp(bytes.slice(at, at + size)), port: (bytes[portAt]! << 8) | bytes[portAt + 1]! };
  const destination = { address: formatIp(bytes.slice(at + size, portAt)), port: (bytes[portAt + 2]! << 8) | bytes[portAt + 3]! };
  return { state: "complete", version: 2, addresses: { source, destination }, length };
}

/**
 * The header for a new connection on behalf of `addresses` (null: on lb's own behalf, as a health check: v1 UNKNOWN,
 * v2 LOCAL). Ends of different families (an IPv4 client reaching an IPv6 listener) are both written as IPv6.
 */
export function encodeProxyHeader(version: ProxyVersion, addresses: ProxyAddresses | null): Uint8Array {
  const ends = addresses && bytesOf(addresses);
  if (version === 1) {
    if (!ends) return new TextEncoder().encode("PROXY UNKNOWN\r\n");
    const family = ends.source.length === 4 ? "TCP4" : "TCP6";
    const { source, destination } = addresses!;
    return new TextEncoder().encode(`PROXY ${family} ${formatIp(ends.source)} ${formatIp(ends.destination)} ${source.port} ${destination.port}\r\n`);
  }
  const blockBytes = ends ? 2 * ends.source.length + 4 : 0;
  const header = new Uint8Array(V2_FIXED_BYTES + blockBytes);
  header.set(V2_SIGNATURE);
  header[12] = 0x20 | (ends ? PROXY : LOCAL);
  header[15] = blockBytes;
  if (!ends) return header;
  header[13] = ((ends.source.length === 4 ? 0x1 : 0x2) << 4) | STREAM;
  const size = ends.source.length;
  header.set(ends.source, V2_FIXED_BYTES);
  header.set(ends.destination, V2_FIXED_BYTES + size);
  const view = new DataView(header.buffer);
  view.setUint16(V2_FIXED_BYTES + 2 * size, addresses!.source.port);
  view.setUint16(V2_FIXED_BYTES + 2 * size + 2, addresses!.destination.port);
  return header;
}

/** Both ends as bytes of one family; null when either is not an IP address. */
function bytesOf({ source, destination }: ProxyAddresses): { source: IpBytes; destination: IpBytes } | null {
  const from = parseIp(source.address);
  const to = parseIp(destination.address);
  if (!from || !to) return null;
  const [a, b] = [unmapped(from), unmapped(to)];
  return a.length === b.length ? { source: a, destination: b } : { source: mapped(a), destination: mapped(b) };
}
