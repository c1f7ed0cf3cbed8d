/** Named pools and routes through real sockets: each request reaches the pool its route names, or gets lb's 404. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../src/config/load.ts";
import { deadPort, rawRequest, runCommand, spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-pools-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("routes pick the pool", async () => {
  const api = [startBackend("api1"), startBackend("api2")];
  const web = startBackend("web");
  const canary = startBackend("canary");
  const writes = startBackend("writes");
  const lb = await startTestLb([], {
    pools: {
      api: { backends: api.map((b) => b.url), policy: "least-connections" },
      web: { backends: [web.url] },
      canary: { backends: [canary.url] },
      writes: { backends: [writes.url] },
    },
    routes: [
      { host: "api.example.com", pool: "api" },
      { "path-prefix": "/api/", "strip-prefix": true, pool: "api" },
      { header: { "x-canary": "1" }, pool: "canary" },
      { method: ["POST", "PUT"], "path-prefix": "/site/", pool: "writes" },
      { "path-prefix": "/site/", pool: "web" },
    ],
  });
  afterAll(async () => {
    await lb.stop();
    await Promise.all([...api, web, canary, writes].map((b) => b.stop()));
  });
  const get = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(lb.url + path, init);
    return { status: response.status, body: await response.text(), headers: response.headers };
  };

  test("by host, path prefix (stripped), header and method; the backend sees the rewritten path", async () => {
    expect((await get("/anything", { headers: { host: "API.example.com:443" } })).body).toMatch(/^backend api[12]$/);
    expect((await get("/api/users?id=7")).body).toMatch(/^backend api[12]$/);
    const seen = [...api[0]!.seen, ...api[1]!.seen].map((r) => r.path);
    expect(seen).toContain("/users?id=7");
    expect(seen).toContain("/anything");
    expect((await get("/site/", { headers: { "x-canary": "1" } })).body).toBe("backend canary");
    expect((await get("/site/form", { method: "POST", body: "x=1" })).body).toBe("backend writes");
    expect((await get("/site/page")).body).toBe("backend web");
    expect(web.seen.at(-1)!.path).toBe("/site/page");
  });

  test("no route: lb's 404 in plain text with the request id, in the access log and the metrics", async () => {
    const answer = await get("/elsewhere", { headers: { "x-request-id": "route-test-1" } });
    expect(answer.status).toBe(404);
    expect(answer.body).toBe("404 Not Found: no route for this request\n");
    expect(answer.headers.get("x-request-id")).toBe("route-test-1");
    expect(answer.headers.get("content-type")).toStartWith("text/plain");
    expect(lb.access.find((entry) => entry.requestId === "route-test-1")).toMatchObject({ status: 404, backend: "-", path: "/elsewhere" });
    expect(lb.logs).toContain(`info: no route for GET ${new URL(lb.url).host}/elsewhere: answered 404`);
    const metrics = await (await fetch(`${lb.lb.adminUrl}/metrics`)).text();
    expect(metrics).toContain('lb_requests_rejected_total{reason="no-route"} 1');
    expect(metrics).toMatch(new RegExp(`lb_backend_up\\{backend="${web.url}",pool="web"\\} 1`));
  });

  test("CONNECT and a doubled Host are refused whatever the routes say (not 404), and reach no backend", async () => {
    const port = Number(new URL(lb.url).port);
    for (const host of ["api.example.com:443", "elsewhere.org:443"]) {
      expect(await rawRequest(port, `CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 300)).toStartWith("HTTP/1.1 405");
    }
    const doubled = await rawRequest(port, "GET / HTTP/1.1\r\nHost: b.org\r\nHost: a.example.com\r\nConnection: close\r\n\r\n", 300);
    expect(doubled).toStartWith("HTTP/1.1 400");
    const carried = [...api, web, canary, writes].flatMap((s) => s.seen).filter((r) => r.method === "CONNECT" || /elsewhere\.org|b\.org/.test(r.headers.get("host") ?? ""));
    expect(carried).toEqual([]);
  });

  test("the admin API shows each backend's pool, filters by pool, and adds to a named pool", async () => {
    const admin = lb.lb.adminUrl!.origin;
    const all = (await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ url: string; pool: string }> };
    expect(all.backends.map((b) => [b.pool, b.url])).toEqual([
      ["api", api[0]!.url],
      ["api", api[1]!.url],
      ["web", web.url],
      ["canary", canary.url],
      ["writes", writes.url],
    ]);
    const shown = (await (await fetch(`${admin}/api/config`)).json()) as { pools: Record<string, Record<string, unknown>>; routes: unknown[] };
    expect(shown.pools.api).toMatchObject({ policy: "least-connections", backends: api.map((b) => ({ url: b.url, weight: 1 })) });
    expect(shown.routes[1]).toEqual({ "path-prefix": "/api/", "strip-prefix": true, pool: "api" });
    expect(shown.routes[2]).toEqual({ header: { "x-canary": "1" }, pool: "canary" });
    const onlyApi = (await (await fetch(`${admin}/api/backends?pool=api`)).json()) as { backends: unknown[] };
    expect(onlyApi.backends).toHaveLength(2);
    expect((await fetch(`${admin}/api/backends?pool=nope`)).status).toBe(404);

    const extra = startBackend("web2");
    try {
      const post = (body: unknown) => fetch(`${admin}/api/backends`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const unnamed = await post({ url: extra.url });
      expect(unnamed.status).toBe(400);
      expect(((await unnamed.json()) as { error: string }).error).toContain("say which");
      expect((await post({ url: api[0]!.url, pool: "web" })).status).toBe(409);
      const added = await post({ url: extra.url, pool: "web" });
      expect(added.status).toBe(201);
      expect(((await added.json()) as { pool: string }).pool).toBe("web");
      await waitFor(async () => (await get("/site/x")).body === "backend web2", "the added backend to take web's requests");

      const stats = (await (await fetch(`${admin}/api/stats`)).json()) as { pools: Array<{ name: string; backends: number }> };
      expect(stats.pools.map((p) => [p.name, p.backends])).toEqual([["api", 2], ["web", 2], ["canary", 1], ["writes", 1]]);

      const listed = await runCommand(["backends", "list", "--pool", "web", "--admin", lb.lb.adminUrl!.host]);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(extra.url.replace("http://", ""));
      expect(listed.stdout).not.toContain(api[0]!.url.replace("http://", ""));
      expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+POOL\s+STATE/);
    } finally {
      await extra.stop();
    }
  });
});

describe("lb's own checks come before the routes; the top-level pool takes what no route does", async () => {
  const web = startBackend("web");
  const api = startBackend("api");
  const settings = {
    pools: { api: { backends: [api.url] } },
    routes: [{ host: "*.example.com", pool: "api" }, { "path-prefix": "/api/", pool: "api" }],
  };
  const lb = await startTestLb([web.url], settings);
  afterAll(async () => {
    await lb.stop();
    await Promise.all([web, api].map((s) => s.stop()));
  });

  test("no route matches: the default pool (HAProxy's default_backend), not a 404", async () => {
    expect(await (await fetch(`${lb.url}/elsewhere`)).text()).toBe("backend web");
    expect(await (await fetch(`${lb.url}/api/x`)).text()).toBe("backend api");
  });

  test("a pool a reload removes while a request waits for its first health round: the request is routed anew", async () => {
    const slowCheck = startBackend("slow-check", async (request) => {
      if (new URL(request.url).pathname === "/") await Bun.sleep(1500); // its first check takes 1.5 s
      return new Response("backend slow-check");
    });
    try {
      const config = (values: Record<string, unknown>) =>
        resolveConfig([{ source: "t", values: { host: "127.0.0.1", port: 0, admin: "off", "health-interval": "1s", backends: [web.url], ...values } }], { stdoutIsTTY: false });
      lb.lb.reload(config({ pools: { ...settings.pools, late: { backends: [slowCheck.url] } }, routes: [...settings.routes, { "path-prefix": "/late/", pool: "late" }] }));
      const waiting = fetch(`${lb.url}/late/x`).then(async (r) => [r.status, await r.text()]);
      await Bun.sleep(200);
      lb.lb.reload(config(settings));
      expect(await waiting).toEqual([200, "backend web"]);
    } finally {
      await slowCheck.stop();
    }
  });
});

test("a reload that moves a backend from one kept pool to another keeps its counts", async () => {
  const [a1, a2, moving] = [startBackend("a1"), startBackend("a2"), startBackend("moving")];
  const config = (pools: Record<string, string[]>) =>
    resolveConfig(
      [{ source: "t", values: { host: "127.0.0.1", port: 0, admin: "127.0.0.1:0", "health-interval": "1m", "drain-timeout": "1s", pools: Object.fromEntries(Object.entries(pools).map(([name, urls]) => [name, { backends: urls }])), routes: [{ "path-prefix": "/b/", pool: "b" }, { pool: "a" }] } }],
      { stdoutIsTTY: false },
    );
  const lb = await startTestLb([], { pools: { a: { backends: [a1.url, moving.url] }, b: { backends: [a2.url] } }, routes: [{ "path-prefix": "/b/", pool: "b" }, { pool: "a" }] });
  try {
    for (let i = 0; i < 6; i++) await (await fetch(`${lb.url}/r${i}`)).text(); // round robin: 3 to moving
    const served = () => lb.lb.metrics.backends.get(moving.url)?.requests.get("200 GET");
    expect(served()).toBe(3);
    lb.lb.reload(config({ a: [a1.url], b: [a2.url, moving.url] }));
    // The drain in pool a ends (nothing in flight): its "removed" must not take the counts pool b goes on with.
    await waitFor(() => !lb.lb.pools().get("a")!.backends.some((b) => b.url === moving.url), "moving gone from pool a");
    await waitFor(() => lb.lb.pools().get("b")!.available().some((b) => b.url === moving.url), "moving up in pool b");
    for (let i = 0; i < 4; i++) await (await fetch(`${lb.url}/b/r${i}`)).text(); // 2 more to moving
    expect(served()).toBe(5);
  } finally {
    await lb.stop();
    await Promise.all([a1, a2, moving].map((b) => b.stop()));
  }
});

test("the admin API removing a backend from the pool a reload is moving it out of leaves its counts to the other pool", async () => {
  const [moving, b1] = [startBackend("moving"), startBackend("b1")];
  const routes = [{ "path-prefix": "/b/", pool: "b" }, { pool: "a" }];
  const settings = { "health-interval": "1m", "drain-timeout": "30s", routes };
  const lb = await startTestLb([], { ...settings, pools: { a: { backends: [moving.url] }, b: { backends: [b1.url] } } });
  const inPool = (name: string) => lb.lb.pools().get(name)!.find(moving.url);
  try {
    for (let i = 0; i < 3; i++) await (await fetch(`${lb.url}/r${i}`)).text(); // pool a has only it
    const served = () => lb.lb.metrics.backends.get(moving.url)?.requests.get("200 GET");
    expect(served()).toBe(3);
    // Pool a's new backend never comes up, so the moving one keeps serving there (make-before-break) while pool b has it.
    const dead = `http://127.0.0.1:${deadPort()}`;
    lb.lb.reload(resolveConfig([{ source: "t", values: { host: "127.0.0.1", port: 0, ...settings, pools: { a: { backends: [dead] }, b: { backends: [b1.url, moving.url] } } } }], { stdoutIsTTY: false }));
    await waitFor(() => lb.lb.pools().get("b")!.available().some((b) => b.url === moving.url), "moving up in pool b");
    expect(inPool("a")?.admin).toBe("active");
    // The API finds it in pool a first (a backend is in one pool but for such a move) and removes it from there.
    const removal = await fetch(`${lb.lb.adminUrl!.origin}/api/backends/${new URL(moving.url).host}?timeout=1s`, { method: "DELETE" });
    expect(await removal.json()).toEqual({ removed: new URL(moving.url).host, inflightAtRemoval: 0 });
    expect(inPool("a")).toBeUndefined();
    expect(inPool("b")).toBeDefined();
    for (let i = 0; i < 4; i++) await (await fetch(`${lb.url}/b/r${i}`)).text(); // round robin: 2 to moving
    expect(served()).toBe(5);
  } finally {
    await lb.stop();
    await Promise.all([moving, b1].map((b) => b.stop()));
  }
});

describe.each([1, 2])("a reload adds and removes pools (--workers %d)", (workers) => {
  const file = join(dir, `lb-${workers}.toml`);
  const hooks = join(dir, `hooks-${workers}.ts`);
  writeFileSync(hooks, `export function onResponse(ctx, response) { response.headers.set("x-hooked", ctx.pool); }`);
  const old = startBackend("old", async (request) => {
    if (new URL(request.url).pathname.endsWith("/slow")) await Bun.sleep(600);
    return new Response("backend old");
  });
  const fresh = startBackend("new");
  const web = startBackend("web");
  afterAll(() => Promise.all([old, fresh, web].map((b) => b.stop())));
  const write = (pool: string, backend: string) =>
    writeFileSync(
      file,
      `host = "127.0.0.1"\nport = 0\nworkers = ${workers}\nhooks = "${hooks}"\nhealth-interval = "200ms"\ndrain-timeout = "5s"\n` +
        `[pools.${pool}]\nbackends = ["${backend}"]\n[pools.web]\nbackends = ["${web.url}"]\n` +
        `[[routes]]\npath-prefix = "/x/"\npool = "${pool}"\n[[routes]]\npool = "web"\n`,
    );

  test("under load, with a request in flight on the pool that leaves: nothing fails; every process runs the hooks", async () => {
    write("old", old.url);
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    try {
      const statuses: number[] = [];
      const answers: string[] = [];
      const hooked = new Set<string | null>();
      let running = true;
      const load = Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          while (running) {
            const response = await fetch(`${lb.url}${i % 2 ? "/x/a" : "/b"}`);
            statuses.push(response.status);
            hooked.add(response.headers.get("x-hooked"));
            answers.push(await response.text());
          }
        }),
      );
      await waitFor(() => answers.length > 200, "load");
      const slow = fetch(`${lb.url}/x/slow`).then(async (r) => [r.status, await r.text()]);
      await waitFor(() => old.seen.some((r) => r.path === "/x/slow"), "the slow request to reach the old pool");
      write("new", fresh.url);
      await lb.waitForLine("stderr", /config reloaded: .*pools added: new; pools draining out: old; changed: pools, routes/, 5000);
      await waitFor(() => answers.includes("backend new"), "the new pool to take /x/", 5000);
      const mark = answers.length;
      await waitFor(() => answers.length > mark + 200, "load after the reload");
      running = false;
      await load;
      expect(await slow).toEqual([200, "backend old"]);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(answers.slice(mark).includes("backend old")).toBe(false);
      expect([...hooked].sort()).toEqual(["new", "old", "web"]);
    } finally {
      await lb.kill();
    }
  });
});
