/** The hooks examples in deploy/hooks/, loaded as lb loads them and called on real Request objects. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHookContext } from "../../src/hooks/context.ts";
import { type LoadedHooks, loadHooks } from "../../src/hooks/load.ts";
import { PUBLISHED_HOOK_TYPES } from "../../src/hooks/published-types.ts";
import type { HookContext } from "../../src/hooks/lb-hooks.d.ts";
import { ROOT, runCommand } from "../helpers.ts";

const example = (name: string) => `${ROOT}deploy/hooks/${name}`;

function contextFor(path: string, headers: Record<string, string> = {}): HookContext {
  return createHookContext(new Request(`http://lb.test${path}`, { headers }), { requestId: "r1", clientIp: "127.0.0.1", pool: "web", path });
}

/** onRequest's answer, if it gave one, and the ctx it left. */
async function request(hooks: LoadedHooks, path: string, headers: Record<string, string> = {}) {
  const ctx = contextFor(path, headers);
  const answer = await hooks.onRequest!(ctx);
  return { ctx, answer };
}

/** Sets environment variables for one load of a hooks file (they are read when it loads or runs). */
async function withEnv<T>(vars: Record<string, string | undefined>, run: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  for (const [name, value] of Object.entries(vars)) if (value === undefined) delete process.env[name];
  try {
    return await run();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

test("deploy/hooks/lb-hooks.d.ts (a link to src/hooks/lb-hooks.d.ts, the one source) is what `lb types` prints", async () => {
  const { code, stdout } = await runCommand(["types"]);
  expect(code).toBe(0);
  expect(stdout).toBe(PUBLISHED_HOOK_TYPES);
  expect(await Bun.file(example("lb-hooks.d.ts")).text()).toBe(stdout);
});

test("canary.ts: x-canary: 1 goes to the pool canary, anything else stays", async () => {
  const hooks = await loadHooks(example("canary.ts"));
  expect((await request(hooks, "/", { "x-canary": "1" })).ctx.pool).toBe("canary");
  expect((await request(hooks, "/", { "x-canary": "0" })).ctx.pool).toBe("web");
  expect((await request(hooks, "/")).ctx.pool).toBe("web");
});

describe("ab-cookie.ts", () => {
  test("the cookie ab=b goes to the pool b, ab=a stays; neither sets a cookie", async () => {
    const hooks = await loadHooks(example("ab-cookie.ts"));
    for (const [cookie, pool] of [["x=1; ab=b", "b"], ["ab=a", "web"]]) {
      const { ctx } = await request(hooks, "/", { cookie: cookie! });
      expect(ctx.pool).toBe(pool!);
      const response = new Response("ok");
      await hooks.onResponse!(ctx, response);
      expect(response.headers.get("set-cookie")).toBeNull();
    }
  });

  test("a client without the cookie is put in a group, goes there at once, and gets the cookie; both groups occur", async () => {
    const hooks = await loadHooks(example("ab-cookie.ts"));
    const groups = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const { ctx } = await request(hooks, "/", { cookie: "ab=zzz" });
      const response = new Response("ok");
      await hooks.onResponse!(ctx, response);
      const group = /^ab=([ab]); Path=\/; Max-Age=2592000; SameSite=Lax$/.exec(response.headers.get("set-cookie") ?? "")?.[1];
      expect(group).toBeDefined();
      expect(ctx.pool).toBe(group === "b" ? "b" : "web");
      groups.add(group!);
    }
    expect([...groups].sort()).toEqual(["a", "b"]); // 64 tosses all alike: 1 in 2^63
  });
});

describe("maintenance.ts", () => {
  const dir = mkdtempSync(join(tmpdir(), "lb-maintenance-"));
  const flag = join(dir, "maintenance");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("while the flag file exists: 503 with Retry-After and a page, except /healthz; without it, nothing", async () => {
    await withEnv({ LB_MAINTENANCE_FILE: flag, LB_MAINTENANCE: undefined }, async () => {
      const hooks = await loadHooks(example("maintenance.ts"));
      expect((await request(hooks, "/shop")).answer).toBeUndefined();
      writeFileSync(flag, "");
      const { answer } = await request(hooks, "/shop?item=1");
      expect(answer).toBeInstanceOf(Response);
      const page = answer as Response;
      expect(page.status).toBe(503);
      expect(page.headers.get("retry-after")).toBe("300");
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(await page.text()).toContain("Down for maintenance");
      expect((await request(hooks, "/healthz")).answer).toBeUndefined();
      rmSync(flag);
      expect((await request(hooks, "/shop")).answer).toBeUndefined();
    });
  });

  test("LB_MAINTENANCE=1 turns it on too", async () => {
    await withEnv({ LB_MAINTENANCE_FILE: flag, LB_MAINTENANCE: "1" }, async () => {
      const hooks = await loadHooks(example("maintenance.ts"));
      expect(((await request(hooks, "/")).answer as Response).status).toBe(503);
    });
  });
});

describe("auth.ts", () => {
  const token = "s3cret-token";

  test("/admin and below need the bearer token: 401 with WWW-Authenticate otherwise; the token is not passed on", async () => {
    await withEnv({ LB_HOOK_TOKEN: token }, async () => {
      const hooks = await loadHooks(example("auth.ts"));
      for (const path of ["/admin", "/admin/users", "/ADMIN/users", "/%61dmin/users", "/admin%2", "/admin?x=1"]) {
        for (const authorization of [undefined, "Bearer wrong", `Basic ${token}`, `Bearer ${token}x`]) {
          const { answer } = await request(hooks, path, authorization ? { authorization } : {});
          const response = answer as Response;
          expect(response.status).toBe(401);
          expect(response.headers.get("www-authenticate")).toBe('Bearer realm="admin"');
          expect(await response.text()).not.toContain(token);
        }
      }
      for (const authorization of [`Bearer ${token}`, `bearer ${token}`]) {
        const { ctx, answer } = await request(hooks, "/admin/users", { authorization });
        expect(answer).toBeUndefined();
        expect(ctx.headers.get("authorization")).toBeNull();
      }
      const open = await request(hooks, "/administrator", { authorization: "Bearer anything" });
      expect(open.answer).toBeUndefined();
      expect(open.ctx.headers.get("authorization")).toBe("Bearer anything");
    });
  });

  test("without LB_HOOK_TOKEN the file does not load, so lb does not start with /admin open", async () => {
    await withEnv({ LB_HOOK_TOKEN: undefined }, async () => {
      await expect(loadHooks(example("auth.ts"))).rejects.toThrow("threw while loading: Error: set LB_HOOK_TOKEN to the token /admin/ requires");
    });
  });
});
