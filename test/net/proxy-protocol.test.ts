/**
 * The PROXY protocol codec (src/net/proxy-protocol.ts) and the address parsing under it (src/net/ip.ts), bytes only:
 * every header is read exactly one way or refused, and whatever lb writes reads back as it was meant.
 */
import { describe, expect, test } from "bun:test";
import { formatIp, inRanges, parseCidr, parseIPv4, parseIPv6, parseIp, LOOPBACK_RANGES, type Cidr } from "../../src/net/ip.ts";
import { V2_SIGNATURE, decodeProxyHeader, encodeProxyHeader, type Decoded } from "../../src/net/proxy-protocol.ts";

const text = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => Buffer.concat(parts);

/** A version 2 header: command and family bytes, then `body` (addresses and TLVs) with its length. */
function v2(command: number, family: number, body: number[]): Uint8Array {
  return concat(V2_SIGNATURE, Uint8Array.of(command, family, body.length >> 8, body.length & 0xff, ...body));
}
const INET_BLOCK = [192, 0, 2, 7, 10, 0, 0, 1, 0xd4, 0x31, 0x01, 0xbb]; // 192.0.2.7:54321 → 10.0.0.1:443

describe("IP addresses", () => {
  test.each([
    ["192.0.2.1", "192.0.2.1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["::1", "::1"],
    ["::", "::"],
    ["1::", "1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
  ])("%s reads as %s", (input, canonical) => {
    expect(formatIp(parseIp(input)!)).toBe(canonical);
  });

  test.each(["01.2.3.4", "1.2.3", "256.0.0.1", "1.2.3.4.5", "a.b.c.d", "", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::1.2.3", "1.2.3.4::", "fe80::1%eth0"])(
    "%p is refused",
    (input) => {
      expect(parseIPv4(input) ?? parseIPv6(input)).toBeNull();
    },
  );

  test("CIDR ranges match by prefix, IPv4-mapped IPv6 peers as IPv4", () => {
    const ranges = ["10.0.0.0/8", "192.0.2.7", "fd00::/8", "172.16.0.0/12"].map((r) => parseCidr(r) as Cidr);
    expect(inRanges("10.200.3.4", ranges)).toBe(true);
    expect(inRanges("11.0.0.1", ranges)).toBe(false);
    expect(inRanges("192.0.2.7", ranges)).toBe(true);
    expect(inRanges("192.0.2.8", ranges)).toBe(false);
    expect(inRanges("::ffff:10.1.1.1", ranges)).toBe(true);
    expect(inRanges("fd12::1", ranges)).toBe(true);
    expect(inRanges("fe12::1", ranges)).toBe(false);
    expect(inRanges("172.31.255.255", ranges)).toBe(true);
    expect(inRanges("172.32.0.0", ranges)).toBe(false);
    expect(inRanges("not an address", ranges)).toBe(false);
    const loopback = LOOPBACK_RANGES.map((r) => parseCidr(r) as Cidr);
    expect(inRanges("127.0.0.1", loopback) && inRanges("::1", loopback) && inRanges("::ffff:127.0.0.1", loopback)).toBe(true);
    expect(inRanges("::2", loopback)).toBe(false);
    expect(inRanges("10.0.0.1", [parseCidr("::ffff:10.0.0.0/104") as Cidr])).toBe(true);
  });

  test.each(["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "example.com", "10.0.0/8"])("CIDR %p is refused with a reason", (input) => {
    expect(typeof parseCidr(input)).toBe("string");
  });
});

describe("PROXY headers that are accepted", () => {
  const accepted: Array<[string, Uint8Array, Partial<Extract<Decoded, { state: "complete" }>>]> = [
    ["v1 TCP4", text("PROXY TCP4 192.0.2.7 10.0.0.1 54321 443\r\nGET"), {
      version: 1, length: 41, addresses: { source: { address: "192.0.2.7", port: 54321 }, destination: { address: "10.0.0.1", port: 443 } } }],
    ["v1 TCP6, written long", text("PROXY TCP6 2001:db8:0:0:0:0:0:7 ::1 65535 0\r\n"), {
      version: 1, addresses: { source: { address: "2001:db8::7", port: 65535 }, destination: { address: "::1", port: 0 } } }],
    ["v1 UNKNOWN: the rest of the line ignored, the peer's own address stands", text("PROXY UNKNOWN ff:: whatever\r\nGET"), { version: 1, addresses: null, length: 29 }],
    ["v1 at its longest (107 bytes)", text(`PROXY TCP6 ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`), { length: 104 }],
    ["v2 PROXY INET", v2(0x21, 0x11, INET_BLOCK), {
      version: 2, length: 28, addresses: { source: { address: "192.0.2.7", port: 54321 }, destination: { address: "10.0.0.1", port: 443 } } }],
    ["v2 PROXY INET with TLVs after the addresses (skipped)", v2(0x21, 0x11, [...INET_BLOCK, 0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x01, 0x00]), {
      length: 16 + 12 + 9, addresses: { source: { address: "192.0.2.7", port: 54321 }, destination: { address: "10.0.0.1", port: 443 } } }],
    ["v2 PROXY INET6", v2(0x21, 0x21, [...parseIp("2001:db8::7")!, ...parseIp("2001:db8::1")!, 0, 80, 1, 0]), {
      addresses: { source: { address: "2001:db8::7", port: 80 }, destination: { address: "2001:db8::1", port: 256 } } }],
    ["v2 LOCAL (the balancer's own health check): no addresses, whatever it carries", v2(0x20, 0x11, INET_BLOCK), { addresses: null, length: 28 }],
    ["v2 LOCAL with nothing", v2(0x20, 0x00, []), { addresses: null, length: 16 }],
    ["v2 PROXY UNSPEC: the peer's own address stands", v2(0x21, 0x00, []), { addresses: null }],
    ["v2 PROXY UNIX: no IP to use, the peer's own stands", v2(0x21, 0x31, new Array(216).fill(0)), { addresses: null, length: 232 }],
  ];
  test.each(accepted)("%s", (_, bytes, expected) => {
    const decoded = decodeProxyHeader(bytes);
    expect(decoded).toMatchObject({ state: "complete", ...expected });
  });

  test.each(accepted)("%s, arriving a byte at a time: incomplete until its last byte", (_, bytes) => {
    const { length } = decodeProxyHeader(bytes) as Extract<Decoded, { state: "complete" }>;
    for (let n = 0; n < length; n++) expect(decodeProxyHeader(bytes.subarray(0, n)).state).toBe("incomplete");
    expect(decodeProxyHeader(bytes.subarray(0, length)).state).toBe("complete");
  });
});

describe("PROXY headers that are refused", () => {
  test.each<[string, Uint8Array, string]>([
    ["plain HTTP", text("GET / HTTP/1.1\r\n"), "no PROXY protocol header"],
    ["a TLS ClientHello", Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00), "no PROXY protocol header"],
    ["lower-case proxy", text("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), "no PROXY protocol header"],
    ["a damaged v2 signature", concat(V2_SIGNATURE.subarray(0, 11), Uint8Array.of(0x0b, 0x21, 0x11, 0, 12, ...INET_BLOCK)), "no PROXY protocol header"],
    ["v1 over 107 bytes without CRLF", text(`PROXY TCP4 ${"1".repeat(120)}`), "without CRLF"],
    ["v1 cut short (fields missing)", text("PROXY TCP4 192.0.2.7 10.0.0.1 54321\r\n"), "needs 4 fields"],
    ["v1 unknown family", text("PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"), 'family "UDP4"'],
    ["v1 TCP4 with IPv6 addresses", text("PROXY TCP4 2001:db8::7 2001:db8::1 1 2\r\n"), "address family mismatch"],
    ["v1 TCP6 with IPv4 addresses", text("PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n"), "address family mismatch"],
    ["v1 a name for an address", text("PROXY TCP4 example.com 10.0.0.1 1 2\r\n"), "is not an address"],
    ["v1 a leading zero in an address", text("PROXY TCP4 192.0.2.07 10.0.0.1 1 2\r\n"), "is not an address"],
    ["v1 port over 65535", text("PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n"), "is not a port"],
    ["v1 port with a leading zero", text("PROXY TCP4 192.0.2.7 10.0.0.1 080 2\r\n"), "is not a port"],
    ["v1 two spaces", text("PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n"), "needs 4 fields"],
    ["v2 version 1 in the version nibble", v2(0x11, 0x11, INET_BLOCK), "version 1 after"],
    ["v2 command 2", v2(0x22, 0x11, INET_BLOCK), "unknown version 2 command"],
    ["v2 INET with only 8 address bytes", v2(0x21, 0x11, INET_BLOCK.slice(0, 8)), "address family mismatch"],
    ["v2 INET6 with an INET block", v2(0x21, 0x21, INET_BLOCK), "address family mismatch"],
    ["v2 datagram transport", v2(0x21, 0x12, INET_BLOCK), "not a stream"],
    ["v2 family 4", v2(0x21, 0x41, INET_BLOCK), "unknown version 2 address family"],
  ])("%s", (_, bytes, reason) => {
    const decoded = decodeProxyHeader(bytes);
    expect(decoded.state).toBe("invalid");
    expect((decoded as { reason: string }).reason).toContain(reason);
  });

  test("a start that cannot become a header is refused at its first wrong byte, not after a wait", () => {
    expect(decodeProxyHeader(text("G")).state).toBe("invalid");
    expect(decodeProxyHeader(text("PROXX")).state).toBe("invalid");
    expect(decodeProxyHeader(Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0b)).state).toBe("invalid");
  });
});

describe("PROXY headers lb writes", () => {
  const v4 = { source: { address: "192.0.2.7", port: 54321 }, destination: { address: "10.0.0.1", port: 443 } };
  const v6 = { source: { address: "2001:db8::7", port: 1 }, destination: { address: "2001:db8::1", port: 2 } };

  test("v1 is the spec's text line", () => {
    expect(new TextDecoder().decode(encodeProxyHeader(1, v4))).toBe("PROXY TCP4 192.0.2.7 10.0.0.1 54321 443\r\n");
    expect(new TextDecoder().decode(encodeProxyHeader(1, v6))).toBe("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n");
    expect(new TextDecoder().decode(encodeProxyHeader(1, null))).toBe("PROXY UNKNOWN\r\n");
  });

  test("v2 is the signature, PROXY over TCP, and the address block", () => {
    expect([...encodeProxyHeader(2, v4)]).toEqual([...v2(0x21, 0x11, INET_BLOCK)]);
    expect([...encodeProxyHeader(2, null)]).toEqual([...v2(0x20, 0x00, [])]);
  });

  test.each([1, 2] as const)("v%d reads back as written, for both families and for none", (version) => {
    for (const addresses of [v4, v6, null]) {
      const bytes = encodeProxyHeader(version, addresses);
      expect(decodeProxyHeader(bytes)).toEqual({ state: "complete", version, addresses, length: bytes.length });
    }
  });

  test("an IPv4-mapped client of an IPv6 listener is written as IPv4 when both ends are; as IPv6 when one is not", () => {
    const mappedBoth = { source: { address: "::ffff:192.0.2.7", port: 1 }, destination: { address: "::ffff:10.0.0.1", port: 2 } };
    expect(new TextDecoder().decode(encodeProxyHeader(1, mappedBoth))).toBe("PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n");
    const mixed = { source: { address: "192.0.2.7", port: 1 }, destination: { address: "2001:db8::1", port: 2 } };
    expect(new TextDecoder().decode(encodeProxyHeader(1, mixed))).toBe("PROXY TCP6 ::ffff:c000:207 2001:db8::1 1 2\r\n");
    expect(decodeProxyHeader(encodeProxyHeader(2, mixed))).toMatchObject({ addresses: { source: { address: "::ffff:c000:207" } } });
  });

  test("an end that is not an IP address makes a header on lb's own behalf (UNKNOWN, LOCAL)", () => {
    const unknown = { source: { address: "-", port: 0 }, destination: { address: "10.0.0.1", port: 80 } };
    expect(decodeProxyHeader(encodeProxyHeader(1, unknown))).toMatchObject({ addresses: null });
    expect(decodeProxyHeader(encodeProxyHeader(2, unknown))).toMatchObject({ addresses: null });
  });
});
