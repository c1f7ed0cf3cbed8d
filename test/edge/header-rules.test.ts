/**
 * Header rules through real sockets: request and response rules (set, add, remove) with their placeholders, per pool
 * and per route, the fields lb frames itself out of their reach, and the unit that applies them.
 */
import { describe, expect, test } from "bun:test";
import { CompiledRules } from "../../src/edge/header-rules.ts";
import { stoppedAfterEach } from "../helpers.ts";

describe("the rules", () => {
  test("remove drops every field of the name, set replaces, add goes beside; placeholders are filled per request", () => {
    const rules = new CompiledRules({ set: [["x-real-ip", "{client_ip}"]], add: [["via", "lb {request_id} for {host}"]], remove: ["x-debug"] });
    const out = rules.apply(
      [["x-debug", "1"], ["x-real-ip", "6.6.6.6"], ["via", "1.1 other"], ["x-debug", "2"], ["accept", "*/*"]],
      { clientIp: "192.0.2.1", requestId: "r1", host: "app.example" },
    );
    expect(out).toEqual([["via", "1.1 other"], ["accept", "*/*"], ["x-real-ip", "192.0.2.1"], ["via", "lb r1 for app.example"]]);
  });
});

const { backend, lbFor } = stoppedAfterEach();

describe("through real sockets", () => {
  test("a pool's rules change what the backend gets and what the client gets; a route's replace them", async () => {
    const b = backend("b", (request) => {
      const echoed = ["x-real-ip", "x-debug", "x-tag", "x-forwarded-for"].map((name) => `${name}=${request.headers.get(name)}`).join(" ");
      return new Response(echoed, { headers: { server: "app/1.2", "x-powered-by": "php", "cache-control": "private" } });
    });
    const lb = await lbFor([], {
      pools: {
        api: {
          backends: [b.url],
          "request-headers": { set: { "X-Real-IP": "{client_ip}" }, add: { "X-Tag": "id={request_id} host={host}" }, remove: ["X-Debug"] },
          "response-headers": ["remove X-Powered-By", "set Server: lb", "add Cache-Control: no-transform"],
        },
      },
      routes: [{ "path-prefix": "/raw/", pool: "api", "request-headers": [], "response-headers": "set X-Route: raw" }, { pool: "api" }],
    });
    const pooled = await fetch(`${lb.url}/x`, { headers: { "x-real-ip": "6.6.6.6", "x-debug": "1", "x-request-id": "rid-7", host: "app.example" } });
    expect(await pooled.text()).toBe("x-real-ip=127.0.0.1 x-debug=null x-tag=id=rid-7 host=app.example x-forwarded-for=127.0.0.1");
    expect(pooled.headers.get("server")).toBe("lb");
    expect(pooled.headers.get("x-powered-by")).toBeNull();
    expect(pooled.headers.get("cache-control")).toBe("private, no-transform");
    expect(pooled.headers.get("x-request-id")).toBe("rid-7");
    const routed = await fetch(`${lb.url}/raw/x`, { headers: { "x-debug": "1" } });
    expect(await routed.text()).toBe("x-real-ip=null x-debug=1 x-tag=null x-forwarded-for=127.0.0.1");
    expect(routed.headers.get("x-route")).toBe("raw");
    expect(routed.headers.get("x-powered-by")).toBe("php");
  });
});

describe("GET /api/config", () => {
  test("shows the rules but not a credential a rule sends (Authorization, Cookie, X-Api-Key, Set-Cookie), per pool and route", async () => {
    const b = backend("b", (request) => new Response(request.headers.get("authorization")));
    const lb = await lbFor([], {
      "request-headers": { set: { Authorization: "Bearer backend-secret-1", "X-Tag": "t" }, add: { Cookie: "sid=secret-2" } },
      pools: { api: { backends: [b.url], "request-headers": ["set X-Api-Key: secret-3"], "response-headers": ["add Set-Cookie: seen=secret-4"] } },
      routes: [{ "path-prefix": "/r/", pool: "api", "request-headers": ["set Authorization: Basic secret-5"] }, { pool: "api" }],
    });
    expect(await (await fetch(`${lb.url}/r/x`)).text()).toBe("Basic secret-5");
    const shown = await (await fetch(`${lb.lb.adminUrl!.origin}/api/config`)).text();
    for (let i = 1; i <= 5; i++) expect(shown).not.toContain(`secret-${i}`);
    const view = JSON.parse(shown);
    expect(view["request-headers"]).toEqual({ set: { authorization: "[redacted]", "x-tag": "t" }, add: { cookie: "[redacted]" } });
    expect(view.pools.api["request-headers"]).toEqual({ set: { "x-api-key": "[redacted]" } });
    expect(view.pools.api["response-headers"]).toEqual({ add: { "set-cookie": "[redacted]" } });
    expect(view.routes[0]["request-headers"]).toEqual({ set: { authorization: "[redacted]" } });
  });
});
