/**
 * Edge policies through real sockets: allow and deny per pool and per route (a route's over its pool's), a reload that
 * changes them while a request is in flight, and /metrics counting the refusals.
 */
import { describe, expect, test } from "bun:test";
import { resolveConfig } from "../../src/config/load.ts";
import { stoppedAfterEach, waitFor } from "../helpers.ts";

const { backend, lbFor } = stoppedAfterEach();

describe("allow and deny", () => {
  test("a route's list replaces its pool's; deny wins over allow; a refusal is lb's short 403, logged and counted", async () => {
    const api = backend("api");
    const lb = await lbFor([], {
      pools: { api: { backends: [api.url], allow: ["127.0.0.0/8", "::1"] } },
      routes: [
        { "path-prefix": "/admin/", pool: "api", allow: ["10.0.0.0/8"] },
        { "path-prefix": "/blocked/", pool: "api", deny: ["127.0.0.1"] },
        { pool: "api" },
      ],
    });
    expect((await fetch(`${lb.url}/open`)).status).toBe(200);
    const admin = await fetch(`${lb.url}/admin/x`);
    expect(admin.status).toBe(403);
    expect(await admin.text()).toBe("403 Forbidden: this address may not use this service\n");
    expect(admin.headers.get("x-request-id")).toBeTruthy();
    expect((await fetch(`${lb.url}/blocked/x`)).status).toBe(403);
    expect(api.seen.map((r) => r.path).filter((p) => p !== "/")).toEqual(["/open"]);
    expect(lb.access.filter((entry) => entry.status === 403).map((entry) => entry.path)).toEqual(["/admin/x", "/blocked/x"]);
    const metrics = await (await fetch(`${lb.lb.adminUrl!.origin}/metrics`)).text();
    expect(metrics).toContain('lb_requests_rejected_total{reason="deny"} 2');
  });

  test("a reload changes the lists for the next request; the one in flight finishes", async () => {
    const release = Promise.withResolvers<void>();
    const slow = backend("slow", async (request) => {
      if (new URL(request.url).pathname === "/slow") await release.promise;
      return new Response("ok");
    });
    const settings = { port: 0, host: "127.0.0.1", admin: "127.0.0.1:0", backends: [slow.url] };
    const lb = await lbFor([slow.url]);
    const inFlight = fetch(`${lb.url}/slow`);
    await waitFor(() => slow.seen.some((r) => r.path === "/slow"), () => "the slow request at the backend");
    lb.lb.reload(resolveConfig([{ source: "test", values: { ...settings, deny: ["127.0.0.0/8"] } }], { stdoutIsTTY: false }));
    expect((await fetch(`${lb.url}/after`)).status).toBe(403);
    release.resolve();
    expect((await inFlight).status).toBe(200);
  });
});
