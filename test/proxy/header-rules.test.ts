import { describe, expect, test } from "bun:test";
import { scanFields, upstreamRequestFields } from "../../src/proxy/headers.ts";
import { pathOf, redact } from "../../src/proxy/trip.ts";

describe("upstream request fields", () => {
  const client = { ip: "10.1.2.3", proto: "http" as const };
  const fields = (incoming: Record<string, string>) =>
    new Headers(upstreamRequestFields(scanFields(new Headers(incoming)), client, "rid-1"));

  test("the RFC 9110 hop-by-hop list and everything Connection names are removed; the rest stays", () => {
    const out = fields({
      connection: "close, X-Per-Hop ,, keep-alive, bad token",
      "x-per-hop": "1",
      "keep-alive": "timeout=5",
      "proxy-connection": "keep-alive",
      te: "trailers",
      trailer: "x",
      "transfer-encoding": "chunked",
      upgrade: "websocket",
      "proxy-authorization": "Basic x",
      "content-type": "text/plain",
      authorization: "Bearer kept",
    });
    expect([...out.keys()].sort()).toEqual(["authorization", "content-type", "x-forwarded-for", "x-forwarded-proto", "x-request-id"]);
  });

  test("X-Forwarded-For is appended to, Proto and Host are set from what lb saw, Host is kept, the request id is lb's", () => {
    const out = fields({ host: "app.example", "x-forwarded-for": "1.1.1.1", "x-forwarded-proto": "https", "x-forwarded-host": "evil", "x-request-id": "theirs" });
    expect(out.get("x-forwarded-for")).toBe("1.1.1.1, 10.1.2.3");
    expect(out.get("x-forwarded-proto")).toBe("http");
    expect(out.get("x-forwarded-host")).toBe("app.example");
    expect(out.get("host")).toBe("app.example");
    expect(out.get("x-request-id")).toBe("rid-1");
  });

  test("a Connection header cannot remove Host, nor the fields lb sets", () => {
    const out = fields({ host: "app.example", connection: "Host, X-Forwarded-Proto, X-Request-Id" });
    expect(out.get("host")).toBe("app.example");
    expect(out.get("x-forwarded-proto")).toBe("http");
    expect(out.get("x-request-id")).toBe("rid-1");
  });

  test("a first hop starts X-Forwarded-For", () => {
    expect(fields({ host: "h" }).get("x-forwarded-for")).toBe("10.1.2.3");
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
