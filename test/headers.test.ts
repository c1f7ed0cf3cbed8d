import { describe, expect, test } from "bun:test";
import { HOP_BY_HOP, downstreamResponseHeaders, stripHopByHop, upstreamRequestHeaders } from "../src/proxy/headers.ts";
import { pathOf, redact } from "../src/proxy/forward.ts";

describe("hop-by-hop headers", () => {
  test("the RFC 9110 list and everything Connection names are removed; the rest stays", () => {
    const headers = new Headers({
      connection: "close, X-Per-Hop ,, keep-alive",
      "x-per-hop": "1",
      "keep-alive": "timeout=5",
      "proxy-connection": "keep-alive",
      te: "trailers",
      trailer: "x",
      "transfer-encoding": "chunked",
      upgrade: "websocket",
      "proxy-authorization": "Basic x",
      "proxy-authenticate": "Basic",
      "content-type": "text/plain",
      authorization: "Bearer kept",
    });
    stripHopByHop(headers);
    expect([...headers.keys()].sort()).toEqual(["authorization", "content-type"]);
  });

  test("the list names every RFC 9110 §7.6.1 header", () => {
    expect<string[]>([...HOP_BY_HOP].sort()).toEqual(
      ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"].sort(),
    );
  });
});

describe("upstream request headers", () => {
  const client = { ip: "10.1.2.3", proto: "http" as const };

  test("X-Forwarded-For is appended to, Proto and Host are set, Host is kept", () => {
    const out = upstreamRequestHeaders(new Headers({ host: "app.example", "x-forwarded-for": "1.1.1.1", "x-forwarded-proto": "https" }), client);
    expect(out.get("x-forwarded-for")).toBe("1.1.1.1, 10.1.2.3");
    expect(out.get("x-forwarded-proto")).toBe("http");
    expect(out.get("x-forwarded-host")).toBe("app.example");
    expect(out.get("host")).toBe("app.example");
  });

  test("a first hop starts X-Forwarded-For, and the incoming headers are not modified", () => {
    const incoming = new Headers({ host: "h", connection: "close" });
    const out = upstreamRequestHeaders(incoming, client);
    expect(out.get("x-forwarded-for")).toBe("10.1.2.3");
    expect(out.has("connection")).toBe(false);
    expect(incoming.get("connection")).toBe("close");
  });
});

describe("downstream response headers", () => {
  test("repeated Set-Cookie headers stay separate", () => {
    const upstream = new Headers([["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2"], ["connection", "keep-alive"], ["content-length", "5"]]);
    const out = downstreamResponseHeaders(upstream);
    expect(out.getSetCookie()).toEqual(["a=1; Path=/", "b=2"]);
    expect(out.get("content-length")).toBe("5");
    expect(out.has("connection")).toBe(false);
  });
});

describe("request path", () => {
  test.each([
    ["http://a:8000/x?y=1", "/x?y=1"],
    ["http://a:8000/", "/"],
    ["http://a:8000", "/"],
    ["http://elsewhere.example/x/%20y?q=%2F", "/x/%20y?q=%2F"],
    ["http://a//double//slash", "//double//slash"],
    ["/bare?x=1", "/bare?x=1"],
  ])("%s routes as %s", (url, path) => {
    expect(pathOf(url)).toBe(path);
  });
});

describe("redaction in debug logs", () => {
  test("credentials and cookies are never printed", () => {
    expect(redact("Authorization", "Bearer s3cret")).toBe("[redacted]");
    expect(redact("cookie", "sid=1")).toBe("[redacted]");
    expect(redact("accept", "*/*")).toBe("*/*");
  });
});
