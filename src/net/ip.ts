/**
 * IP addresses as bytes, and CIDR ranges: strict text forms in (no leading zeros, no shortcuts), RFC 5952 text out.
 * Pure: no sockets, no DNS. The PROXY protocol codec and the address checks (--proxy-trusted) are built on it.
 */

/** An address: 4 bytes (IPv4) or 16 (IPv6). */
export type IpBytes = Uint8Array;

const IPV4_PART = /^(0|[1-9]\d{0,2})$/;

/** "192.0.2.1" → 4 bytes; null unless four decimal parts 0-255 without leading zeros. */
export function parseIPv4(text: string): IpBytes | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!IPV4_PART.test(parts[i]!)) return null;
    const n = Number(parts[i]);
    if (n > 255) return null;
    bytes[i] = n;
  }
  return bytes;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/** "2001:db8::1", "::ffff:192.0.2.1" → 16 bytes; null when it is not an IPv6 address (a zone "%eth0" is not taken). */
export function parseIPv6(text: string): IpBytes | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (half: string): number[] | null => {
    if (half === "") return [];
    const groups: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (!v4) return null;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (HEXTET.test(part)) groups.push(parseInt(part, 16));
      else return null;
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return null;
  const given = head.length + tail.length;
  // "::" stands for at least one group of zeros; without it, all eight must be there.
  if (halves.length === 2 ? given > 7 : given !== 8) return null;
  // An embedded IPv4 address may only end the address.
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  const groups = [...head, ...new Array<number>(8 - given).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** Either family, as text; null when it is neither. */
export function parseIp(text: string): IpBytes | null {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/** 4 or 16 bytes as text: dotted IPv4, or RFC 5952 IPv6 (the longest run of zero groups as "::", lower case). */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of at least two zero groups (the first of equals) becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) [best, bestLength] = [i, end - i];
    i = end;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((group) => group.toString(16)).join(":");
  if (best < 0) return hex(0, 8);
  return `${hex(0, best)}::${hex(best + bestLength, 8)}`;
}

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** An IPv4-mapped IPv6 address (::ffff:192.0.2.1, as a dual-stack socket reports IPv4 peers) as its 4 bytes; others unchanged. */
export function unmapped(bytes: IpBytes): IpBytes {
  if (bytes.length !== 16 || V4_MAPPED_PREFIX.some((byte, i) => bytes[i] !== byte)) return bytes;
  return bytes.subarray(12);
}

/** 4 bytes as their IPv4-mapped IPv6 form; 16 unchanged. */
export function mapped(bytes: IpBytes): IpBytes {
  if (bytes.length === 16) return bytes;
  const six = new Uint8Array(16);
  six.set(V4_MAPPED_PREFIX);
  six.set(bytes, 12);
  return six;
}

/** A range of addresses: the first `bits` bits of `prefix`. */
export interface Cidr {
  prefix: IpBytes;
  bits: number;
}

/** "10.0.0.0/8", "fd00::/8", or one address ("127.0.0.1" = /32); an error message when it is not one. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const prefix = parseIp(address);
  if (!prefix) return `"${text}" is not an address or CIDR range (write 10.0.0.0/8, 192.0.2.7 or fd00::/8)`;
  const most = prefix.length * 8;
  const bitsText = slash < 0 ? String(most) : text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!(bits >= 0 && bits <= most)) return `"${text}": the prefix length must be 0 to ${most}`;
  // nginx warns and HAProxy says nothing; but "10.0.0.1/8" in an allow list is most often one address mistyped.
  const network = masked(prefix, bits);
  if (network.some((byte, i) => byte !== prefix[i])) {
    return `"${text}" has bits set past its prefix; write ${formatIp(network)}/${bits} for the range or ${address} for the one address`;
  }
  // ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared unmapped.
  const four = unmapped(prefix);
  return four.length === 4 && prefix.length === 16 && bits >= 96 ? { prefix: four, bits: bits - 96 } : { prefix, bits };
}

/** `bytes` with every bit past the first `bits` cleared: the range's first address. */
function masked(bytes: IpBytes, bits: number): IpBytes {
  const out = bytes.map((byte, i) => (i < bits >> 3 ? byte : 0));
  if (bits & 7) out[bits >> 3] = bytes[bits >> 3]! & (0xff << (8 - (bits & 7)));
  return out;
}

/** Whether `address` (text, either family; IPv4-mapped IPv6 counts as IPv4) is inside one of `ranges`. */
export function inRanges(address: string, ranges: readonly Cidr[]): boolean {
  const parsed = parseIp(address);
  if (!parsed) return false;
  const bytes = unmapped(parsed);
  return ranges.some((range) => inRange(bytes, range));
}

function inRange(bytes: IpBytes, { prefix, bits }: Cidr): boolean {
  if (bytes.length !== prefix.length) return false;
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== prefix[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole]! & mask) === (prefix[whole]! & mask);
}

/** The loopback ranges: what --proxy-trusted trusts unless told otherwise. */
export const LOOPBACK_RANGES = ["127.0.0.0/8", "::1/128"];
