import { describe, expect, test } from "bun:test";
import { MAX_HELLO_BYTES, readClientHello } from "../../src/l4/client-hello.ts";
import { SniRoutes } from "../../src/l4/sni-routes.ts";

const u16 = (n: number) => [n >> 8, n & 0xff];
const vector16 = (bytes: number[]) => [...u16(bytes.length), ...bytes];
const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

/** An extension: type, then its data as a 16-bit vector. */
const extension = (type: number, data: number[]) => [...u16(type), ...vector16(data)];
const serverName = (name: string) => extension(0, vector16([0, ...vector16(ascii(name))]));
/** TLS 1.3's encrypted_client_hello (0xfe0d), outer: an opaque payload the passthrough cannot read. */
const ech = extension(0xfe0d, [0, 0, 1, 0, 1, 7, ...vector16([1, 2, 3]), ...vector16(new Array(64).fill(9))]);

/** A ClientHello handshake message with these extensions (none: an old hello without the extensions block). */
function clientHello(extensions: number[] | null): number[] {
  const body = [
    3, 3, // legacy_version TLS 1.2
    ...new Array(32).fill(7), // random
    32, ...new Array(32).fill(1), // session id
    ...vector16([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]), // cipher suites
    1, 0, // compression: null
    ...(extensions === null ? [] : vector16(extensions)),
  ];
  return [1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
}

/** The handshake bytes in records of at most `size` bytes each. */
function records(handshake: number[], size = 16_384): Uint8Array {
  const out: number[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const part = handshake.slice(at, at + size);
    out.push(0x16, 3, 1, ...u16(part.length), ...part);
  }
  return Uint8Array.from(out);
}

const named = (name: string) => records(clientHello([...extension(10, [0, 2, 0, 29]), ...serverName(name), ...extension(43, [2, 3, 4])]));

describe("reading the server name from a ClientHello", () => {
  test("a whole hello in one record gives its server name, lower case", () => {
    expect(readClientHello(named("Shop.Example.com"))).toEqual({ kind: "hello", serverName: "shop.example.com" });
  });

  test("every prefix of a hello fed byte by byte asks for more; the whole one decides", () => {
    const bytes = named("a.example.com");
    for (let end = 0; end < bytes.length; end++) expect(readClientHello(bytes.subarray(0, end))).toEqual({ kind: "more" });
    expect(readClientHello(bytes)).toEqual({ kind: "hello", serverName: "a.example.com" });
  });

  test("a hello split over several records is put back together", () => {
    const bytes = records(clientHello(serverName("split.example.com")), 20);
    expect(bytes.filter((b, i) => b === 0x16 && i % 25 === 0).length).toBeGreaterThan(3);
    expect(readClientHello(bytes)).toEqual({ kind: "hello", serverName: "split.example.com" });
    expect(readClientHello(bytes.subarray(0, bytes.length - 1))).toEqual({ kind: "more" });
  });

  test("a hello without server_name, or without extensions at all, names no server", () => {
    expect(readClientHello(records(clientHello(extension(10, [0, 2, 0, 29]))))).toEqual({ kind: "hello", serverName: null });
    expect(readClientHello(records(clientHello(null)))).toEqual({ kind: "hello", serverName: null });
  });

  test("TLS 1.3 with Encrypted Client Hello: the outer (public) name is the one read", () => {
    const bytes = records(clientHello([...ech, ...serverName("public.example.net"), ...extension(43, [2, 3, 4])]));
    expect(readClientHello(bytes)).toEqual({ kind: "hello", serverName: "public.example.net" });
  });

  test("bytes that are not TLS (an HTTP request, a database greeting) are not-tls at the first byte", () => {
    expect(readClientHello(new TextEncoder().encode("GET / HTTP/1.1\r\n"))).toEqual({ kind: "not-tls" });
    expect(readClientHello(Uint8Array.of(0))).toEqual({ kind: "not-tls" });
    expect(readClientHello(Uint8Array.of(0x15, 3, 3, 0, 2, 2, 40))).toEqual({ kind: "not-tls" }); // an alert first
  });

  test("an SSLv2-format hello is TLS without a server name; an SSLv2-like first byte with another message is not", () => {
    expect(readClientHello(Uint8Array.of(0x80, 0x2e, 1, 3, 1, 0, 21))).toEqual({ kind: "hello", serverName: null });
    expect(readClientHello(Uint8Array.of(0x80, 0x2e))).toEqual({ kind: "more" });
    expect(readClientHello(Uint8Array.of(0x80, 0x2e, 4))).toEqual({ kind: "not-tls" });
  });

  test("garbage after a handshake record header is bad, not a crash", () => {
    const cases: Array<[string, Uint8Array]> = [
      ["version 2.0 record", Uint8Array.of(0x16, 2, 0, 0, 5, 1, 0, 0, 1, 0)],
      ["an empty record", Uint8Array.of(0x16, 3, 1, 0, 0)],
      ["a record over 2^14", Uint8Array.of(0x16, 3, 1, 0x40, 1)],
      ["a ServerHello", records([2, 0, 0, 1, 0])],
      ["fields running past the message", records([1, 0, 0, 3, 3, 3, 9])],
      ["a hello cut by an alert record", Uint8Array.from([...records(clientHello(serverName("x.example"))).subarray(0, 30)].map((b, i) => (i === 4 ? 25 : b)).concat([0x15, 3, 3, 0, 2, 2, 40]))],
    ];
    for (const [what, bytes] of cases) expect({ what, read: readClientHello(bytes).kind }).toEqual({ what, read: "bad" });
  });

  test("a server name that is no host name (a NUL, a space) is bad", () => {
    expect(readClientHello(named("evil\0.example.com")).kind).toBe("bad");
    expect(readClientHello(named("a b.example.com")).kind).toBe("bad");
  });

  test("a hello over the size limit is refused once its length is read, without waiting for its bytes", () => {
    const huge = MAX_HELLO_BYTES + 1;
    const head = Uint8Array.of(0x16, 3, 1, 0, 4, 1, huge >> 16, (huge >> 8) & 0xff, huge & 0xff);
    expect(readClientHello(head)).toEqual({ kind: "bad", reason: `a ClientHello of ${huge} bytes, over ${MAX_HELLO_BYTES}` });
  });

  test("endless handshake records that never complete a hello are refused at the limit", () => {
    const length = 60_000;
    const hello = [1, length >> 16, (length >> 8) & 0xff, length & 0xff, ...new Array(length).fill(0)];
    const bytes = records(hello, 16_000);
    expect(readClientHello(bytes.subarray(0, 50_000))).toEqual({ kind: "more" });
    const flood = new Uint8Array(MAX_HELLO_BYTES + 17_000).fill(0);
    flood.set(bytes.subarray(0, 9));
    expect(readClientHello(flood).kind).toBe("bad");
  });
});

describe("choosing a listener's entry by server name", () => {
  const routes = new SniRoutes<{ sni?: string[]; pool: string }>([
    { sni: ["shop.example.com"], pool: "shop" },
    { sni: ["*.example.com"], pool: "wild" },
    { sni: ["*.eu.example.com"], pool: "eu" },
    { pool: "fallback" },
  ]);

  test("exact beats wildcard, the longest wildcard wins, the entry without sni takes the rest", () => {
    expect(routes.byName).toBe(true);
    expect(routes.match("shop.example.com")?.pool).toBe("shop");
    expect(routes.match("a.example.com")?.pool).toBe("wild");
    expect(routes.match("x.y.example.com")?.pool).toBe("wild");
    expect(routes.match("fr.eu.example.com")?.pool).toBe("eu");
    expect(routes.match("example.com")?.pool).toBe("fallback");
    expect(routes.match(null)?.pool).toBe("fallback");
  });

  test("without a default entry a name nobody takes gets nothing; a listener without sni is not by name", () => {
    const strict = new SniRoutes<{ sni?: string[]; pool: string }>([{ sni: ["a.test"], pool: "a" }]);
    expect(strict.match("b.test")).toBeNull();
    expect(strict.match(null)).toBeNull();
    expect(new SniRoutes<{ sni?: string[]; pool: string }>([{ pool: "db" }]).byName).toBe(false);
  });
});
