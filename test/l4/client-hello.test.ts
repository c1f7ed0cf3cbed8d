import { describe, expect, test } from "bun:test";
import { MAX_HELLO_BYTES, readClientHello } from "../../src/l4/client-hello.ts";
import { SniRoutes } from "../../src/l4/sni-routes.ts";
import { clientHello, ech, extension, named, records, serverName } from "./hello-bytes.ts";

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

describe("hellos from real clients", () => {
  /** The first bytes a real client sends to a socket that never answers, until it has sent `atLeast`. */
  async function firstBytes(command: (port: number) => string[]): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    const got = Promise.withResolvers<void>();
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(_socket, bytes) {
          chunks.push(bytes);
          if (readClientHello(Buffer.concat(chunks)).kind !== "more") got.resolve();
        },
      },
    });
    const client = Bun.spawn(command(server.port), { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    await Promise.race([got.promise, Bun.sleep(5000)]);
    client.kill("SIGKILL");
    server.stop(true);
    return Buffer.concat(chunks);
  }

  test.each([
    ["openssl s_client", (port: number) => ["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", "db.example.org"]],
    ["openssl s_client, TLS 1.2", (port: number) => ["openssl", "s_client", "-tls1_2", "-connect", `127.0.0.1:${port}`, "-servername", "db.example.org"]],
    ["curl", (port: number) => ["curl", "-s", "--max-time", "5", "--resolve", `db.example.org:${port}:127.0.0.1`, `https://db.example.org:${port}/`]],
  ])("%s: the name is read from the whole hello and from every split of it in two", async (_client, command) => {
    const hello = await firstBytes(command);
    expect(readClientHello(hello)).toEqual({ kind: "hello", serverName: "db.example.org" });
    for (let cut = 1; cut < hello.length; cut += 37) expect(readClientHello(hello.subarray(0, cut))).toEqual({ kind: "more" });
  });
});
