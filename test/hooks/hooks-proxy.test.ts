/**
 * Hooks on the request path of a running lb (a real process, real backends): each example in deploy/hooks, hooks that
 * throw, hang or ask for what lb cannot do, and the file changing under it — a broken version keeps the last good.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, spawnLb, startBackend, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-hooks-"));
const hooksFile = join(dir, "lb.hooks.ts");
const maintenanceFlag = join(dir, "maintenance");
const TOKEN = "s3cret-token-for-tests";

/** Each backend says who it is, the path it got, and the Authorization it was sent. */
const backend = (name: string) =>
  startBackend(name, (request) => new Response(`${name} ${new URL(request.url).pathname} auth=${request.headers.get("authorization") ?? "-"}`));
const web = backend("web");
const canary = backend("canary");
const b = backend("b");
afterAll(async () => {
  await Promise.all([web, canary, b].map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const example = (name: string) => readFileSync(`${ROOT}deploy/hooks/${name}`, "utf8");

test("the examples, failing hooks and reloads, through a running lb", async () => {
  writeFileSync(hooksFile, example("canary.ts"));
  const config = join(dir, "lb.toml");
  writeFileSync(
    config,
    `host = "127.0.0.1"\nport = 0\nhealth-interval = "200ms"\nhooks = "${hooksFile}"\nhooks-timeout = "200ms"\nbackends = ["${web.url}"]\n` +
      `[pools.canary]\nbackends = ["${canary.url}"]\n[pools.b]\nbackends = ["${b.url}"]\n[[routes]]\npool = "default"\n`,
  );
  Object.assign(process.env, { LB_HOOK_TOKEN: TOKEN, LB_MAINTENANCE_FILE: maintenanceFlag });
  const lb = await spawnLb(["--config", config, "--no-access-log"]);
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(lb.url + path, { headers });
    return { status: response.status, body: await response.text(), headers: response.headers };
  };
  const admin = /admin (http:\/\/[\d.:]+)/.exec(lb.stderr.find((line) => line.includes("lb listening on"))!)![1];
  const reloads = () => lb.stderr.filter((line) => line.includes(`hooks: reloaded ${hooksFile}`)).length;
  /** Writes a new version of the hooks file and waits until lb has loaded it. */
  const install = async (source: string) => {
    const before = reloads();
    writeFileSync(hooksFile, source);
    await waitFor(() => reloads() > before, "lb to reload the hooks file");
  };
  try {
    // Canary by header.
    expect((await get("/x", { "x-canary": "1" })).body).toBe("canary /x auth=-");
    expect((await get("/x")).body).toBe("web /x auth=-");

    // A broken version is refused with its error; the last good hooks stay.
    writeFileSync(hooksFile, "export function onRequest(ctx { syntax error");
    await lb.waitForLine("stderr", /hooks: .*lb\.hooks\.ts: line 1:31: Expected .*; the last good hooks stay/);
    expect((await get("/x", { "x-canary": "1" })).body).toBe("canary /x auth=-");

    // A/B by cookie: group b goes to pool b; a new client is given a group, and its first answer the cookie.
    await install(example("ab-cookie.ts"));
    expect((await get("/ab", { cookie: "ab=b" })).body).toBe("b /ab auth=-");
    expect((await get("/ab", { cookie: "ab=a" })).body).toBe("web /ab auth=-");
    const fresh = await get("/ab");
    const group = /^ab=([ab]);/.exec(fresh.headers.get("set-cookie") ?? "")?.[1];
    expect(group).toBeDefined();
    expect(fresh.body).toBe(group === "b" ? "b /ab auth=-" : "web /ab auth=-");

    // The maintenance page, while the flag file exists; /healthz still reaches the backends.
    await install(example("maintenance.ts"));
    expect((await get("/page")).status).toBe(200);
    writeFileSync(maintenanceFlag, "");
    const page = await get("/page");
    expect(page.status).toBe(503);
    expect(page.headers.get("retry-after")).toBe("300");
    expect(page.body).toContain("Down for maintenance");
    expect(page.headers.get("x-request-id")).toBeTruthy();
    expect((await get("/healthz")).status).toBe(200);
    rmSync(maintenanceFlag);
    expect((await get("/page")).status).toBe(200);

    // The auth check: /admin needs the bearer token, which the backend never sees.
    await install(example("auth.ts"));
    const refused = await get("/admin/users");
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe('Bearer realm="admin"');
    expect((await get("//ADMIN/users")).status).toBe(401);
    expect((await get("/admin/users", { authorization: `Bearer ${TOKEN}` })).body).toBe("web /admin/users auth=-");
    expect((await get("/public", { authorization: "Bearer other" })).body).toBe("web /public auth=Bearer other");
    expect(lb.stderr.join("\n")).not.toContain(TOKEN);

    // A hook may pick a pool and a backend in it, rewrite the path and headers, and change the answer's headers.
    await install(`
      export function onRequest(ctx) {
        ctx.pool = "canary";
        ctx.backend = ${JSON.stringify(canary.url)};
        ctx.path = "/rewritten" + ctx.path;
        ctx.headers.set("authorization", "from-hook");
      }
      export function onResponse(ctx, response) { response.headers.set("x-hooked", ctx.requestId); }
    `);
    const rewritten = await get("/y", { "x-request-id": "hook-1" });
    expect(rewritten.body).toBe("canary /rewritten/y auth=from-hook");
    expect(rewritten.headers.get("x-hooked")).toBe("hook-1");

    // What lb cannot do is refused with a 500 and a log line: a pool it does not have, a backend not in the pool, a
    // path that would smuggle a second request into the request line, headers that are not a Headers.
    await install(`export function onRequest(ctx) {
      if (ctx.path === "/pool") ctx.pool = "nope";
      else if (ctx.path === "/smuggle") ctx.path = "/a HTTP/1.1\\r\\nHost: evil\\r\\n\\r\\nGET /admin";
      else if (ctx.path === "/latin1") ctx.path = "/a\\u010D\\u010AX-Injected: 1";
      else if (ctx.path === "/headers") ctx.headers = new Map([["x-a", "1\\r\\nX-Injected: yes"]]);
      else ctx.backend = ${JSON.stringify(canary.url)};
    }`);
    expect((await get("/pool")).status).toBe(500);
    await lb.waitForLine("stderr", /hooks: onRequest chose pool \\"nope\\", which lb does not have; its pools are default, canary, b \(GET \/pool, request /);
    // Health checks (GET /, every 200 ms) go on meanwhile: they are not what is counted.
    const forwarded = () => [web, canary, b].flatMap((backend) => backend.seen).filter((r) => r.path !== "/").length;
    const seenBefore = forwarded();
    for (const path of ["/other", "/smuggle", "/latin1", "/headers"]) expect([path, (await get(path)).status]).toEqual([path, 500]);
    expect(forwarded()).toBe(seenBefore);

    // A hook that throws: 500 (onRequest) or 502 (onResponse), a log line, and lb serves on.
    await install(`export function onRequest(ctx) { if (ctx.path === "/boom") throw new Error("boom"); }
      export function onResponse(ctx) { if (ctx.path === "/late") throw new TypeError("late boom"); }`);
    const boom = await get("/boom");
    expect(boom.status).toBe(500);
    expect(boom.body).toBe("500 Internal Server Error: a hook failed; lb's log says why\n");
    await lb.waitForLine("stderr", /hooks: onRequest threw: Error: boom \(GET \/boom, request /);
    for (let i = 0; i < 12; i++) expect((await get("/late")).status).toBe(502);
    await lb.waitForLine("stderr", /hooks: onResponse threw: TypeError: late boom/);
    // The backend answered 200 each time: the hook's failure is not the backend's (no errors, no ejection).
    const backends = async () => ((await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ errors: number; state: string }> }).backends;
    expect((await backends()).map((x) => [x.errors, x.state])).toEqual([[0, "healthy"], [0, "healthy"], [0, "healthy"]]);
    // The answer lb dropped gave its backend's in-flight count back.
    const inflight = async () => ((await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ inflight: number }> }).backends.map((x) => x.inflight);
    await waitFor(async () => (await inflight()).every((n) => n === 0), "every in-flight count back to 0");
    expect((await get("/fine")).body).toBe("web /fine auth=-");

    // A hook slower than --hooks-timeout (200ms): 500 at the budget, not when the hook would have finished.
    await install(`export async function onRequest(ctx) { if (ctx.path === "/slow") await Bun.sleep(5000); }`);
    const started = performance.now();
    expect((await get("/slow")).status).toBe(500);
    expect(performance.now() - started).toBeLessThan(2000);
    await lb.waitForLine("stderr", /hooks: onRequest timed out: took longer than 200ms/);
    expect((await get("/fast")).status).toBe(200);
    expect(lb.proc.exitCode).toBeNull();
  } finally {
    await lb.kill();
  }
}, 30_000);
