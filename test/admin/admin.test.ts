/** The admin API and `lb backends`: change the pool while lb runs, under load, without failing a request. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InProcessLb, deadPort, runCommand, spawnLb, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend, lbFor } = stoppedAfterEach();

/** A JSON answer, loosely typed: the assertions check its shape. */
const body = async (response: Response | Promise<Response>): Promise<any> => (await response).json();
const api = (lb: InProcessLb, path: string, init?: RequestInit) => fetch(`${lb.lb.adminUrl!.origin}${path}`, init);
const post = (lb: InProcessLb, path: string, body?: unknown) =>
  api(lb, path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body), headers: { "content-type": "application/json" } });

/** The status curl gets for `url` sent with this Host header (and any other header lines). */
async function curlWithHost(url: string, host: string, headers: string[] = []): Promise<number> {
  const args = [`Host: ${host}`, ...headers].flatMap((header) => ["-H", header]);
  const proc = Bun.spawn(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", ...args, url]);
  return Number(await new Response(proc.stdout).text());
}

/** Clients sending requests back to back until stopped; every status is kept. */
function steadyLoad(url: string, clients = 8) {
  const statuses: number[] = [];
  const answeredBy: string[] = [];
  let running = true;
  const done = Promise.all(
    Array.from({ length: clients }, async () => {
      while (running) {
        const response = await fetch(url);
        answeredBy.push(await response.text());
        statuses.push(response.status);
      }
    }),
  );
  return { statuses, answeredBy, stop: async () => ((running = false), await done) };
}

describe("admin API", () => {
  test("lists every backend with its state, checks, in-flight and totals", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url, "http://127.0.0.1:1"]);
    await (await fetch(`${lb.url}/x`)).text();
    const { backends } = await body(api(lb, "/api/backends"));
    expect(backends).toHaveLength(2);
    expect(backends[0]).toMatchObject({
      id: new URL(a.url).host,
      url: a.url,
      state: "healthy",
      weight: 1,
      inflight: 0,
      passes: 1,
      failures: 0,
      requests: 1,
      errors: 0,
      retries: 0,
      lastCheck: { ok: true, reason: "status 200" },
    });
    expect(backends[1]).toMatchObject({ state: "unhealthy", lastCheck: { ok: false, reason: "connection refused" } });
  });

  test("healthz and readyz for orchestrators", async () => {
    const lb = await lbFor(["http://127.0.0.1:1"]);
    expect((await api(lb, "/healthz")).status).toBe(200);
    // Ready means lb answers (listening, first health round done), even with no backend up: lb's own 503 with
    // Retry-After is a better answer for clients than every replica leaving the Service.
    const ready = await api(lb, "/readyz");
    expect(ready.status).toBe(200);
    expect(await body(ready)).toEqual({ ready: true, healthy: 0 });
  });

  test("GET /api/config writes values as the config does and redacts credentials in health-check headers; readiness is 503 while lb drains", async () => {
    const gate = Promise.withResolvers<void>();
    const a = backend("a", async (request) => {
      if (new URL(request.url).pathname === "/hold") await gate.promise;
      return new Response("a");
    });
    const written = ["--health-status", "200-299", "--hash-key", "header:X-User", "--max-body-size", "10mb"];
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--drain-timeout", "10s", "--health-header", "Authorization: Bearer backend-secret", ...written, a.url]);
    const admin = /admin (http:\/\/[\d.]+:\d+)/.exec(lb.stderr.find((l) => l.includes("listening"))!)![1]!;
    try {
      const shown = await (await fetch(`${admin}/api/config`)).text();
      expect(shown).not.toContain("backend-secret");
      expect(JSON.parse(shown)["health-header"]).toEqual([["Authorization", "[redacted]"]]);
      expect(JSON.parse(shown)).toMatchObject({ "health-status": "200-299", "hash-key": "header:X-User", "max-body-size": "10mb", "health-down-interval": "10s" });
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      const held = fetch(`${lb.url}/hold`);
      await waitFor(() => a.seen.some((r) => r.path === "/hold"), "the held request");
      lb.proc.kill("SIGTERM");
      await lb.waitForLine("stderr", /draining 1 in-flight/);
      // Draining: not ready (no new clients), but the admin API still answers.
      expect((await fetch(`${admin}/readyz`)).status).toBe(503);
      expect((await fetch(`${admin}/healthz`)).status).toBe(200);
      gate.resolve();
      expect((await held).status).toBe(200);
    } finally {
      gate.resolve();
      await lb.kill();
    }
  });

  test("a backend added under load is checked at once and takes traffic, with no failed request", async () => {
    const [a, b] = [backend("a"), backend("b")];
    const lb = await lbFor([a.url], { "health-interval": "1m" });
    const load = steadyLoad(`${lb.url}/`);
    await waitFor(() => load.statuses.length > 50, "some load");
    const added = await post(lb, "/api/backends", { url: b.url, weight: 2 });
    expect(added.status).toBe(201);
    await waitFor(() => load.answeredBy.includes("backend b"), "the new backend to take traffic", 3000);
    const mark = load.answeredBy.length;
    await waitFor(() => load.answeredBy.length > mark + 300, "more load");
    await load.stop();
    const after = load.answeredBy.slice(mark);
    expect(after.filter((x) => x === "backend b").length / after.length).toBeGreaterThan(0.5); // weight 2 of 3
    expect(load.statuses.filter((s) => s !== 200)).toEqual([]);
    expect(lb.logs.some((l) => l.includes(`admin 127.0.0.1: added backend ${b.url} (weight 2)`))).toBe(true);
  });

  test("bad and duplicate additions get 400 and 409 with a JSON error", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url]);
    const bad = await post(lb, "/api/backends", { url: "ftp://x" });
    expect(bad.status).toBe(400);
    expect((await body(bad)).error).toContain("backends must be http");
    expect((await post(lb, "/api/backends", "nonsense")).status).toBe(400);
    const twice = await post(lb, "/api/backends", { url: a.url });
    expect(twice.status).toBe(409);
    expect((await body(twice)).error).toContain("already in the pool");
    expect((await api(lb, "/api/backends/nope:1/drain", { method: "POST" })).status).toBe(404);
    expect((await api(lb, "/api/backends/%ZZ/drain", { method: "POST" })).status).toBe(400);
    expect((await api(lb, `/api/backends/${new URL(a.url).host}?timeout=banana`, { method: "DELETE" })).status).toBe(400);
    const resolved = await post(lb, "/api/backends", { url: "http://app.internal:8080#resolve" });
    expect(resolved.status).toBe(400);
    expect(lb.lb.pool.backends).toHaveLength(1);
  });

  test("drain under load: in-flight requests finish, no new ones arrive, nothing fails; then remove", async () => {
    const gate = Promise.withResolvers<void>();
    const slowOnB = (name: string) => async (request: Request) => {
      if (new URL(request.url).pathname === "/slow") await gate.promise;
      return new Response(`backend ${name}`);
    };
    const [a, b] = [backend("a"), backend("b", slowOnB("b"))];
    const lb = await lbFor([a.url, b.url], { "health-interval": "1m" });
    const inflight = [fetch(`${lb.url}/slow`), fetch(`${lb.url}/slow`)]; // round robin: one of them goes to b
    await waitFor(() => b.seen.some((r) => r.path === "/slow"), "a slow request on b");
    const load = steadyLoad(`${lb.url}/`);
    const drained = await post(lb, `/api/backends/${new URL(b.url).host}/drain`);
    expect((await body(drained)).state).toBe("draining");
    // Requests already on their way to b when the drain began may still land; after those, nothing new.
    const drainedAt = load.statuses.length;
    await waitFor(() => load.statuses.length > drainedAt + 50, "requests after the drain");
    const seenAfterDrain = b.seen.length;
    await waitFor(() => load.statuses.length > drainedAt + 300, "more load during the drain");
    expect(b.seen.length).toBe(seenAfterDrain);
    const removal = api(lb, `/api/backends/${new URL(b.url).host}?timeout=5s`, { method: "DELETE" });
    gate.resolve();
    expect(await Promise.all(inflight.map(async (r) => (await r).status))).toEqual([200, 200]);
    expect(await body(removal)).toEqual({ removed: new URL(b.url).host, inflightAtRemoval: 0 });
    await load.stop();
    expect(load.statuses.filter((s) => s !== 200)).toEqual([]);
    expect(lb.lb.pool.backends.map((x) => x.url)).toEqual([a.url]);
  });

  test("disable and enable for maintenance", async () => {
    const [a, b] = [backend("a"), backend("b")];
    const lb = await lbFor([a.url, b.url]);
    const id = new URL(b.url).host;
    expect((await body(post(lb, `/api/backends/${id}/disable`))).state).toBe("disabled");
    const texts = await Promise.all([1, 2, 3, 4].map(async () => (await fetch(`${lb.url}/`)).text()));
    expect(texts).toEqual(["backend a", "backend a", "backend a", "backend a"]);
    expect((await body(post(lb, `/api/backends/${id}/enable`))).state).toBe("healthy");
    const again = await Promise.all([1, 2].map(async () => (await fetch(`${lb.url}/`)).text()));
    expect(again.sort()).toEqual(["backend a", "backend b"]);
  });
});

describe("admin security", () => {
  test("lb refuses a non-loopback admin listener without a token", async () => {
    const { code, stderr } = await runCommand(["--admin", "0.0.0.0:0", "http://127.0.0.1:1"]);
    expect(code).toBe(2);
    expect(stderr).toContain("is not a loopback address, so the admin API needs a token");
  });

  test("with a token: none or a wrong one gets 401, the right one works; the token is never logged", async () => {
    const a = backend("a");
    const token = "t0ps3cret-token";
    const lb = await lbFor([a.url], { "admin-token": token });
    expect((await api(lb, "/api/backends")).status).toBe(401);
    expect((await api(lb, "/api/backends", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await api(lb, "/api/backends", { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await api(lb, "/healthz")).status).toBe(200);
    expect(lb.logs.some((l) => l.includes("refused GET /api/backends"))).toBe(true);
    expect(lb.logs.join("\n")).not.toContain(token);
  });

  test("DNS rebinding: without a token, a Host that is not an address or a localhost name gets 403 (curl)", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url]);
    const admin = lb.lb.adminUrl!;
    const curlStatus = (host: string, path: string) => curlWithHost(`${admin.origin}${path}`, host);
    expect(await curlStatus("attacker.example", "/api/backends")).toBe(403);
    expect(await curlStatus(`attacker.example:${admin.port}`, "/metrics")).toBe(403);
    expect(await curlStatus(`127.0.0.1.nip.io:${admin.port}`, "/api/stats")).toBe(403);
    expect(await curlStatus(`localhost:${admin.port}`, "/api/backends")).toBe(200);
    expect(await curlStatus(`dashboard.localhost:${admin.port}`, "/api/backends")).toBe(200);
    expect(await curlStatus(`127.0.0.1:${admin.port}`, "/metrics")).toBe(200);
    expect(await curlStatus(`[::1]:${admin.port}`, "/api/backends")).toBe(200);
    expect(lb.logs.some((l) => l.includes('refused GET /api/backends: Host "attacker.example"'))).toBe(true);
  });

  test("with a token, any Host may reach the API (the token is what no web page can send)", async () => {
    const a = backend("a");
    const token = "a-long-enough-token-0123";
    const lb = await lbFor([a.url], { "admin-token": token });
    const url = `${lb.lb.adminUrl!.origin}/api/backends`;
    expect(await curlWithHost(url, "lb.internal.example", [`Authorization: Bearer ${token}`])).toBe(200);
    expect(await curlWithHost(url, "lb.internal.example")).toBe(401);
  });

  test("cross-site changes are refused: a foreign Origin, Sec-Fetch-Site cross-site or same-site, a JSON body not labelled JSON", async () => {
    const a = backend("a");
    const lb = await lbFor([a.url]);
    const id = new URL(a.url).host;
    const attempts: Array<[string, RequestInit, number]> = [
      // A page's fetch with a text/plain body (no CORS preflight) from another origin.
      ["/api/backends", { method: "POST", body: JSON.stringify({ url: "http://127.0.0.1:9", weight: 1000 }), headers: { "content-type": "text/plain", origin: "http://evil.example" } }, 403],
      // A form post from another site.
      [`/api/backends/${id}/disable`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "cross-site" } }, 403],
      // A dev server on another localhost port is the same site, but not the same origin.
      [`/api/backends/${id}/drain`, { method: "POST", headers: { "sec-fetch-site": "same-site", origin: "http://localhost:3000" } }, 403],
      [`/api/backends/${id}`, { method: "DELETE", headers: { origin: "null" } }, 403],
      // No Origin (curl, lb's CLI) but a JSON body sent as text: 415.
      ["/api/backends", { method: "POST", body: JSON.stringify({ url: "http://127.0.0.1:9" }), headers: { "content-type": "text/plain" } }, 415],
    ];
    for (const [path, init, status] of attempts) {
      const response = await api(lb, path, init);
      expect({ path, status: response.status }).toEqual({ path, status });
      expect(await body(response)).toHaveProperty("error");
    }
    expect(lb.lb.pool.backends.map((b) => [b.name, b.admin])).toEqual([[id, "active"]]);
    // The dashboard's own requests (same origin) and the CLI's (no Origin) still work.
    const own = { origin: lb.lb.adminUrl!.origin, "sec-fetch-site": "same-origin" };
    expect((await api(lb, `/api/backends/${id}/disable`, { method: "POST", headers: own })).status).toBe(200);
    expect((await post(lb, `/api/backends/${id}/enable`)).status).toBe(200);
  });

  test("an empty or blank admin token is refused at startup; a short one is warned about", async () => {
    for (const token of ["", "   "]) {
      const { code, stderr } = await runCommand(["--admin-token", token, "http://127.0.0.1:1"]);
      expect(code).toBe(2);
      expect(stderr).toContain("admin-token: is empty");
    }
    const padded = await runCommand(["--admin-token", " secret-token-with-a-space ", "http://127.0.0.1:1"]);
    expect(padded.code).toBe(2);
    expect(padded.stderr).toContain("admin-token: begins or ends with blank space");
    const fromEnv = Bun.spawn(["bun", "src/main.ts", "http://127.0.0.1:1"], { env: { ...process.env, LB_ADMIN_TOKEN: "  " }, stderr: "pipe" });
    expect(await fromEnv.exited).toBe(2);
    expect(await new Response(fromEnv.stderr).text()).toContain("environment LB_ADMIN_TOKEN: admin-token: is empty");
    const a = backend("a");
    const lb = await lbFor([a.url], { "admin-token": "short" });
    expect(lb.logs.some((l) => l.includes("the admin token has only 5 characters"))).toBe(true);
  });
});

describe("lb backends (the CLI)", () => {
  test("list, add, drain, remove against a running lb", async () => {
    const [a, b] = [backend("a"), backend("b")];
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--admin", "127.0.0.1:0", a.url]);
    cleanup.push(() => lb.kill());
    const admin = /admin (http:\/\/[\d.]+:\d+)/.exec(lb.stderr.find((l) => l.includes("listening"))!)![1]!;
    const cli = (...args: string[]) => runCommand(["backends", ...args, "--admin", new URL(admin).host]);

    const added = await cli("add", b.url, "--weight", "3");
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toContain(`added: ${new URL(b.url).host}`);
    await waitFor(async () => (await cli("list")).stdout.includes("healthy  3"), "the added backend to be healthy");
    const list = await cli("list");
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+POOL\s+STATE\s+WEIGHT\s+INFLIGHT\s+REQUESTS\s+ERRORS\s+RETRIES\s+LAST CHECK$/);
    expect(list.stdout).toContain(new URL(a.url).host);
    const json = JSON.parse((await cli("list", "--json")).stdout);
    expect(json.map((x: { id: string }) => x.id)).toEqual([new URL(a.url).host, new URL(b.url).host]);
    // HAProxy's "set weight": PATCH /api/backends/<id>, from the terminal.
    expect((await cli("weight", new URL(a.url).host, "7")).stdout).toContain(`weight 7: ${new URL(a.url).host}`);
    expect(JSON.parse((await cli("list", "--json")).stdout)[0].weight).toBe(7);
    expect(await cli("weight", new URL(a.url).host, "5000")).toMatchObject({ code: 2, stderr: 'lb: "5000": weight must be a whole number from 1 to 1000\n' });
    expect((await cli("weight", new URL(a.url).host, "heavy")).code).toBe(2);
    expect(await cli("remove", new URL(a.url).host, "--timeout", "soon")).toMatchObject({ code: 2, stderr: expect.stringContaining('--timeout "soon" is not a duration') });
    expect((await cli("drain", new URL(b.url).host)).stdout).toContain("is draining");
    expect((await cli("remove", new URL(b.url).host)).stdout).toBe(`removed ${new URL(b.url).host} (drained)\n`);
    await lb.waitForLine("stderr", /admin 127\.0\.0\.1: removed backend/);

    const missing = await cli("drain", "nope:1");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("lb: no backend nope:1; lb backends list shows them\n");
    const unreachable = await runCommand(["backends", "list", "--admin", "127.0.0.1:1"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("cannot reach lb's admin API at http://127.0.0.1:1");
    expect((await runCommand(["backends", "frobnicate"])).code).toBe(2);
  });

  test("lb backends and lb status find lb as lb does (flags, then LB_ADMIN and LB_ADMIN_TOKEN, then --config); lb backends alone lists; mistakes are told in flags", async () => {
    const [a, b] = [backend("a"), backend("b")];
    const dir = mkdtempSync(join(tmpdir(), "lb-admin-cli-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "lb.toml");
    const address = `127.0.0.1:${deadPort()}`;
    const token = "a-token-long-enough-1234";
    const pools = `[pools.api]\nbackends = ["${a.url}"]\n[pools.web]\nbackends = ["${b.url}"]\n[[routes]]\npath-prefix = "/api/"\npool = "api"\n[[routes]]\npool = "web"\n`;
    writeFileSync(file, `host = "127.0.0.1"\nport = 0\nadmin = "${address}"\nadmin-token = "${token}"\n${pools}`);
    // The flag repeats the file's address only because spawnLb otherwise gives lb a free one of its own.
    const lb = await spawnLb(["--config", file, "--admin", address]);
    cleanup.push(() => lb.kill());
    const noEnv = { LB_ADMIN: "", LB_ADMIN_TOKEN: "" };
    const lbCli = (args: string[], env: Record<string, string> = {}) => runCommand(args, undefined, { env: { ...noEnv, ...env } });

    const listed = await lbCli(["backends", "--config", file]);
    expect(listed.stderr).toBe("");
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+POOL\s+STATE/);
    expect(listed.stdout).toContain(`${new URL(a.url).host}  api`);
    const status = await lbCli(["status"], { LB_ADMIN: address, LB_ADMIN_TOKEN: token });
    expect(status).toMatchObject({ code: 0, stdout: expect.stringContaining("pool api: 1/1 healthy") });
    // Flags win over the environment, which wins over the file.
    const unreachable = "cannot reach lb's admin API at http://127.0.0.1:1 ";
    expect((await lbCli(["backends", "--config", file, "--admin", "127.0.0.1:1"], { LB_ADMIN: address })).stderr).toContain(unreachable);
    expect((await lbCli(["backends", "--config", file], { LB_ADMIN: "127.0.0.1:1" })).stderr).toContain(unreachable);
    expect(await lbCli(["backends"], { LB_ADMIN: address })).toMatchObject({
      code: 1,
      stderr: `lb: lb's admin API at http://${address} needs a token: give lb's with --admin-token, LB_ADMIN_TOKEN or the --config file\n`,
    });
    expect(await lbCli(["status"], { LB_ADMIN: "nonsense" })).toMatchObject({ code: 2, stderr: expect.stringContaining('lb: environment LB_ADMIN: "nonsense" is not an address') });

    // With several pools, add needs --pool: said as the command line says it.
    const add = (...args: string[]) => lbCli(["backends", "add", "http://127.0.0.1:1", ...args, "--config", file]);
    expect(await add()).toMatchObject({
      code: 2,
      stderr: "lb: this lb has several pools (api, web): name one, e.g. lb backends add http://127.0.0.1:1 --pool api\n",
    });
    expect(await add("--pool", "apj")).toMatchObject({ code: 2, stderr: "lb: --pool apj: no such pool; this lb's pools are api, web\n" });
    expect(await add("--pool", "web")).toMatchObject({ code: 0, stdout: "added: 127.0.0.1:1 (http://127.0.0.1:1) is checking\n" });
  });
});
