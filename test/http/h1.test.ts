/**
 * The HTTP/1.1 codec (src/http/h1/), bytes only, no sockets: finding a head's end across pieces, response heads (status
 * line, fields, framing), body framing (a length, chunked, until close) including responses shaped like
 * response-splitting and smuggling attempts, and writing requests. Each must be read exactly one way or refused.
 */
import { describe, expect, test } from "bun:test";
import { type ResponseHead, parseResponseHead } from "../../src/http/h1/response-head.ts";
import { bodyReaderFor } from "../../src/http/h1/body-reader.ts";
import { ChunkedDecoder, joinInPlace } from "../../src/http/h1/chunked.ts";
import { HeadReader } from "../../src/http/h1/head-reader.ts";
import { LAST_CHUNK, encodeChunk, encodeRequest } from "../../src/http/h1/request-head.ts";

const head = (...lines: string[]) => lines.join("\r\n");

describe("response heads that are accepted", () => {
  const cases: Array<[string, string, string, Partial<ResponseHead>]> = [
    ["a sized answer", head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Type: text/plain"), "GET",
      { status: 200, statusText: "OK", framing: "length", length: 5, reusable: true, headers: [["content-type", "text/plain"]] }],
    ["a chunked answer", head("HTTP/1.1 201 Created", "Transfer-Encoding: chunked"), "POST", { framing: "chunked", reusable: true, headers: [] }],
    ["Transfer-Encoding is case-insensitive", head("HTTP/1.1 200 OK", "transfer-encoding: Chunked"), "GET", { framing: "chunked" }],
    ["no length: read until close, never reused", head("HTTP/1.1 200 OK"), "GET", { framing: "close", reusable: false }],
    ["HTTP/1.0 closes unless it says keep-alive", head("HTTP/1.0 200 OK", "Content-Length: 1"), "GET", { reusable: false }],
    ["HTTP/1.0 with keep-alive", head("HTTP/1.0 200 OK", "Connection: keep-alive", "Content-Length: 1"), "GET", { reusable: true, headers: [] }],
    ["Connection: close", head("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 1"), "GET", { reusable: false }],
    ["equal repeated Content-Lengths are one", head("HTTP/1.1 200 OK", "Content-Length: 7", "Content-Length: 7"), "GET", { length: 7 }],
    ["a Content-Length list of equal values", head("HTTP/1.1 200 OK", "Content-Length: 7, 7"), "GET", { length: 7 }],
    ["chunked beside Content-Length: chunked wins, the connection is not reused (RFC 9112 §6.3)",
      head("HTTP/1.1 200 OK", "Content-Length: 3", "Transfer-Encoding: chunked"), "GET", { framing: "chunked", reusable: false, length: -1 }],
    ["HEAD: no body, and its Content-Length is kept for the client", head("HTTP/1.1 200 OK", "Content-Length: 1234"), "HEAD",
      { framing: "none", headers: [["content-length", "1234"]] }],
    ["HEAD without a length says chunked (Bun would say content-length: 0)", head("HTTP/1.1 200 OK", "Content-Type: text/html", "Transfer-Encoding: chunked"),
      "HEAD", { framing: "none", reusable: true, headers: [["content-type", "text/html"], ["transfer-encoding", "chunked"]] }],
    ["204 has no body", head("HTTP/1.1 204 No Content"), "DELETE", { framing: "none", reusable: true }],
    ["a 204 that claims a body: none is read, and the connection is not reused (its bytes may follow)",
      head("HTTP/1.1 204 No Content", "Content-Length: 5"), "DELETE", { framing: "none", reusable: false }],
    ["304 has no body even with a length", head("HTTP/1.1 304 Not Modified", "Content-Length: 99"), "GET", { framing: "none" }],
    ["1xx has no body", head("HTTP/1.1 100 Continue"), "POST", { status: 100, framing: "none" }],
    ["no reason phrase", head("HTTP/1.1 200", "Content-Length: 0"), "GET", { statusText: "" }],
    ["values are trimmed, inner spaces and tabs kept", head("HTTP/1.1 200 OK", "X-A: \t a \tb  ", "Content-Length: 0"), "GET",
      { headers: [["x-a", "a \tb"]] }],
    ["repeated Set-Cookie stay separate, in order", head("HTTP/1.1 200 OK", "Set-Cookie: a=1", "Set-Cookie: b=2", "Content-Length: 0"), "GET",
      { headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] }],
    ["hop-by-hop fields and those Connection names are dropped", head("HTTP/1.1 200 OK", "Connection: x-hop, keep-alive", "Keep-Alive: timeout=5",
      "X-Hop: 1", "Upgrade: h2c", "Trailer: x", "Proxy-Authenticate: Basic", "X-Kept: 2", "Content-Length: 0"), "GET",
      { headers: [["x-kept", "2"]], reusable: true }],
    ["the backend's own idle timeout is read from Keep-Alive (Node, Apache), and the field is not passed on",
      head("HTTP/1.1 200 OK", "Keep-Alive: timeout=5, max=100", "Content-Length: 0"), "GET", { keepAliveMs: 5000, headers: [] }],
    ["no Keep-Alive timeout: unknown", head("HTTP/1.1 200 OK", "Content-Length: 0"), "GET", { keepAliveMs: 0 }],
    ["obs-text (bytes 0x80-0xff) in a value is passed on", head("HTTP/1.1 200 OK", "X-Name: caf\xe9", "Content-Length: 0"), "GET",
      { headers: [["x-name", "caf\xe9"]] }],
  ];
  for (const [name, text, method, expected] of cases) {
    test(name, () => {
      const parsed = parseResponseHead(text, method);
      expect(typeof parsed).toBe("object");
      expect(parsed).toMatchObject(expected);
    });
  }
});

describe("response heads that are refused (502, connection dropped)", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["not HTTP at all", "SSH-2.0-OpenSSH_9.2", /bad status line/],
    ["HTTP/2 or other versions", "HTTP/2 200", /bad status line/],
    ["a status of two digits", "HTTP/1.1 20 OK", /bad status line/],
    ["a status of four digits", "HTTP/1.1 2000 OK", /bad status line/],
    ["a status above 599 (no client could be given it)", "HTTP/1.1 999 Weird", /bad status line/],
    ["lowercase protocol name", "http/1.1 200 OK", /bad status line/],
    ["a NUL in the reason", "HTTP/1.1 200 O\x00K", /bad status line/],
    ["a bare CR in the reason (response splitting)", "HTTP/1.1 200 OK\rSet-Cookie: evil=1", /bad status line/],
    ["a bare LF between fields (response splitting)", head("HTTP/1.1 200 OK", "X-A: 1\nSet-Cookie: evil=1"), /control character/],
    ["a NUL in a value", head("HTTP/1.1 200 OK", "X-A: a\x00b"), /control character/],
    ["an obs-fold continuation line", head("HTTP/1.1 200 OK", "X-A: 1", " folded"), /folded/],
    ["whitespace between name and colon", head("HTTP/1.1 200 OK", "Content-Length : 5"), /bad header name/],
    ["a line without a colon", head("HTTP/1.1 200 OK", "garbage"), /without a name/],
    ["an empty field name", head("HTTP/1.1 200 OK", ": x"), /without a name/],
    ["differing Content-Lengths", head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"), /Content-Length/],
    ["a Content-Length list that differs", head("HTTP/1.1 200 OK", "Content-Length: 5, 6"), /Content-Length/],
    ["a negative Content-Length", head("HTTP/1.1 200 OK", "Content-Length: -1"), /Content-Length/],
    ["a Content-Length with a sign", head("HTTP/1.1 200 OK", "Content-Length: +5"), /Content-Length/],
    ["a hex Content-Length", head("HTTP/1.1 200 OK", "Content-Length: 0x10"), /Content-Length/],
    ["an empty Content-Length", head("HTTP/1.1 200 OK", "Content-Length:"), /Content-Length/],
    ["chunked twice (two framings in one)", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), /Transfer-Encoding/],
    ["a coding lb does not decode", head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"), /Transfer-Encoding/],
    ["chunked not last", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, identity"), /Transfer-Encoding/],
    ["an obfuscated chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: xchunked"), /Transfer-Encoding/],
    ["a vertical tab in chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: \x0bchunked"), /control character/],
  ];
  for (const [name, text, reason] of cases) {
    test(name, () => {
      const parsed = parseResponseHead(text, "GET");
      expect(typeof parsed).toBe("string");
      expect(parsed as string).toMatch(reason);
    });
  }
});

/** Feeds `pieces` to a decoder; the body, whether it ended, what was left over after it, or the error. */
function decode(...pieces: string[]) {
  const decoder = new ChunkedDecoder();
  let body = "";
  let rest = "";
  for (const piece of pieces) {
    const bytes = Buffer.from(piece, "latin1");
    const data: Uint8Array[] = [];
    const used = decoder.feed(bytes, data);
    if (used < 0) return { error: decoder.error };
    for (const piece of data) body += Buffer.from(piece).toString("latin1");
    rest += bytes.subarray(used).toString("latin1");
  }
  return { body, done: decoder.done, rest };
}

describe("chunked bodies", () => {
  test("chunks of any size, split anywhere, give the same body", () => {
    const wire = "5\r\nhello\r\n1;ext=1\r\n \r\nB\r\n world, bye\r\n0\r\n\r\n";
    expect(decode(wire)).toEqual({ body: "hello  world, bye", done: true, rest: "" });
    for (let cut = 1; cut < wire.length; cut++) {
      expect(decode(wire.slice(0, cut), wire.slice(cut))).toEqual({ body: "hello  world, bye", done: true, rest: "" });
    }
    expect(decode(...wire.split(""))).toEqual({ body: "hello  world, bye", done: true, rest: "" });
  });

  test("the pieces of one feed join in place into one view of the body, leaving the bytes after it alone", () => {
    const bytes = Buffer.from("5\r\nhello\r\n1;ext=1\r\n \r\nB\r\n world, bye\r\n0\r\n\r\nNEXT", "latin1");
    const pieces: Uint8Array[] = [];
    const used = new ChunkedDecoder().feed(bytes, pieces);
    const joined = joinInPlace(pieces);
    expect(Buffer.from(joined).toString("latin1")).toBe("hello  world, bye");
    expect(joined.buffer).toBe(bytes.buffer); // moved, not copied
    expect(bytes.subarray(used).toString("latin1")).toBe("NEXT");
    expect(joinInPlace([pieces[0]!])).toBe(pieces[0]!);
  });

  test("trailers are read and dropped; bytes after the end are left over", () => {
    expect(decode("3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\nHTTP/1.1 200")).toEqual({ body: "abc", done: true, rest: "HTTP/1.1 200" });
  });

  test("not done until the last chunk and the empty line after it", () => {
    expect(decode("3\r\nabc\r\n0\r\n")).toEqual({ body: "abc", done: false, rest: "" });
  });

  const refused: Array<[string, string, RegExp]> = [
    ["a size that is not hex", "zz\r\nmore\r\n0\r\n\r\n", /bad chunk size/],
    ["an empty size line", "\r\nabc\r\n", /bad chunk size/],
    ["a size with a sign", "+5\r\nhello\r\n0\r\n\r\n", /bad chunk size/],
    ["a size with 0x", "0x5\r\nhello\r\n0\r\n\r\n", /bad chunk size/],
    ["a size too large to be real (overflow tricks)", "fffffffffffffffff1\r\n", /too large/],
    ["a size of 2^53 + 1, which a number cannot hold exactly", "20000000000001\r\nabc", /too large/],
    ["a bare LF after the size", "5\nhello\r\n0\r\n\r\n", /bare LF/],
    ["data longer than its size", "3\r\nabcdef\r\n0\r\n\r\n", /longer than its size/],
    ["a missing CRLF after data", "3\r\nabc0\r\n\r\n", /longer than its size/],
    ["a control character in an extension", "3;a=\x01\r\nabc\r\n0\r\n\r\n", /control character/],
    ["a trailer without a colon", "0\r\nnot a field\r\n\r\n", /bad trailer/],
    ["a folded trailer", "0\r\nX-A: 1\r\n folded\r\n\r\n", /bad trailer/],
    ["a size line without end", `${"1".repeat(5000)}`, /too long/],
  ];
  for (const [name, wire, reason] of refused) {
    test(`refused: ${name}`, () => {
      const result = decode(wire);
      expect(result.error).toMatch(reason);
    });
  }
});

describe("writing requests", () => {
  const text = (buffer: Buffer) => buffer.toString("latin1");

  test("request line, headers in order, the body after the head in one buffer with its length", () => {
    const out = encodeRequest("POST", "/a?b=1", [["host", "example.com"], ["x-a", "1"]], "10.0.0.1:80", 5, new TextEncoder().encode("hello"));
    expect(text(out)).toBe("POST /a?b=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello");
  });

  test("the client's framing fields and Expect are replaced by lb's own; a missing Host becomes the backend's", () => {
    const out = encodeRequest("PUT", "/", [["content-length", "999"], ["transfer-encoding", "chunked"], ["expect", "100-continue"]], "10.0.0.1:8080", -1, null);
    expect(text(out)).toBe("PUT / HTTP/1.1\r\nhost: 10.0.0.1:8080\r\ntransfer-encoding: chunked\r\n\r\n");
  });

  test("a POST without a body says Content-Length: 0; a GET says nothing", () => {
    expect(text(encodeRequest("POST", "/", [["host", "h"]], "x", null, null))).toContain("content-length: 0\r\n");
    expect(text(encodeRequest("GET", "/", [["host", "h"]], "x", null, null))).toBe("GET / HTTP/1.1\r\nhost: h\r\n\r\n");
  });

  test("header bytes above 0x7f go out as the same single bytes (latin1), not UTF-8", () => {
    const out = encodeRequest("GET", "/", [["x-name", "caf\xe9"]], "h", null, null);
    expect([...out.subarray(out.indexOf("caf") + 3, out.indexOf("caf") + 4)]).toEqual([0xe9]);
  });

  test("chunks", () => {
    expect(text(encodeChunk(new Uint8Array(26).fill(97)))).toBe(`1a\r\n${"a".repeat(26)}\r\n`);
    expect(text(LAST_CHUNK)).toBe("0\r\n\r\n");
  });
});

describe("finding a head's end", () => {
  const bytes = (text: string) => Buffer.from(text, "latin1");

  test("in one piece: the head without its blank line, and the bytes after it", () => {
    expect(new HeadReader(1024).push(bytes("HTTP/1.1 200 OK\r\nA: 1\r\n\r\nbody"))).toEqual({ head: "HTTP/1.1 200 OK\r\nA: 1", rest: bytes("body") });
  });

  test("split anywhere before its end, the blank line itself across pieces included, it is found once", () => {
    const wire = "HTTP/1.1 204 No Content\r\nA: 1\r\n\r\nnext";
    for (let cut = 1; cut < wire.indexOf("\r\n\r\n") + 4; cut++) {
      const reader = new HeadReader(1024);
      expect(reader.push(bytes(wire.slice(0, cut)))).toBeNull();
      expect(reader.push(bytes(wire.slice(cut)))).toEqual({ head: "HTTP/1.1 204 No Content\r\nA: 1", rest: bytes("next") });
    }
  });

  test("a byte at a time", () => {
    const reader = new HeadReader(1024);
    const wire = "HTTP/1.1 200 OK\r\n\r\n";
    for (const c of wire.slice(0, -1)) expect(reader.push(bytes(c))).toBeNull();
    expect(reader.push(bytes("\n"))).toEqual({ head: "HTTP/1.1 200 OK", rest: bytes("") });
  });

  test("past the limit: too large, whether the end is not there yet or comes late", () => {
    expect(new HeadReader(16).push(bytes("HTTP/1.1 200 OK\r\nA-Long-Field: 1"))).toBe("too large");
    expect(new HeadReader(16).push(bytes("HTTP/1.1 200 OK\r\nA-Long-Field: 1\r\n\r\n"))).toBe("too large");
  });
});

describe("body framing", () => {
  const read = (framing: "length" | "chunked" | "close", length: number, wire: string) => {
    const reader = bodyReaderFor({ status: 200, statusText: "OK", headers: [], framing, length, reusable: true, keepAliveMs: 0 })!;
    const pieces: Uint8Array[] = [];
    const used = reader.feed(Buffer.from(wire, "latin1"), pieces);
    return { body: pieces.map((piece) => Buffer.from(piece).toString("latin1")).join(""), used, done: reader.done };
  };

  test("a length: that many bytes, the rest left over", () => {
    expect(read("length", 5, "hello, next")).toEqual({ body: "hello", used: 5, done: true });
    expect(read("length", 5, "hel")).toEqual({ body: "hel", used: 3, done: false });
  });

  test("until close: every byte, never done", () => {
    expect(read("close", -1, "all of it")).toEqual({ body: "all of it", used: 9, done: false });
  });

  test("chunked: decoded, done at the last chunk", () => {
    expect(read("chunked", -1, "3\r\nabc\r\n0\r\n\r\nnext")).toEqual({ body: "abc", used: 13, done: true });
  });

  test("no body by definition: no reader", () => {
    expect(bodyReaderFor({ status: 304, statusText: "", headers: [], framing: "none", length: -1, reusable: true, keepAliveMs: 0 })).toBeNull();
  });
});
