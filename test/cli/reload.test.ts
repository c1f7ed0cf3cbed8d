/** Config reload: on file change and SIGHUP, diffed against the running pool, under load, never failing a request. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../src/config/load.ts";
import { changedSettings, diffBackends, effectiveConfig, restartPending } from "../../src/config/reload.ts";
import { type LbProcess, type TestBackend, deadPort, runCommand, spawnLb, startBackend, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-reload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = (values: Record<string, unknown>) => resolveConfig([{ source: "t", values: { backends: ["http://a:1"], ...values } }], { stdoutIsTTY: false });

/** `clients` loops each sending GET / to lb one request after another until stopped; every answer, in order. */
function steadyLoad(lbUrl: string, clients = 6) {
  const answers: Array<{ status: number; body: string }> = [];
  let running = true;
  const loops = Promise.all(
    Array.from({ length: clients }, async () => {
      while (running) {
        const response = await fetch(`${lbUrl}/`);
        answers.push({ status: response.status, body: await response.text() });
      }
    }),
  );
  return {
    answers,
    /** Resolves once `count` more answers than now have come. */
    more: (count: number, what: string) => {
      const mark = answers.length;
      return waitFor(() => answers.length >= mark + count, what);
    },
    /** The distinct bodies of the answers from `start` to `end`, sorted. */
    bodies: (start: number, end = answers.length) => [...new Set(answers.slice(start, end).map((answer) => answer.body))].sort(),
    /** How many answers were not 200, by status and body ({} when none). */
    failed: () => {
      const counts: Record<string, number> = {};
      for (const { status, body } of answers) {
        if (status === 200) continue;
        const key = `${status} ${body.trim()}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return counts;
    },
    stop: async () => {
      running = false;
      await loops;
    },
  };
}

/** The admin API's address, from lb's startup line. */
function adminOf(lb: LbProcess): string {
  return /admin (http:\/\/[\d.]+:\d+)/.exec(lb.stderr.find((l) => l.includes("listening"))!)![1]!;
}

async function listedBackends(admin: string): Promise<Array<{ url: string; state: string }>> {
  return ((await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ url: string; state: string }> }).backends;
}

describe("what a reload changes (pure)", () => {
  test("backends are diffed by URL: added, removed, reweighted", () => {
    const before = [
      { url: "http://a:1", weight: 1 },
      { url: "http://b:1", weight: 1 },
      { url: "http://c:1", weight: 1 },
    ];
    const after = [
      { url: "http://a:1", weight: 1 },
      { url: "http://c:1", weight: 4 },
      { url: "http://d:1", weight: 1 },
    ];
    expect(diffBackends(before, after)).toEqual({
      added: [{ url: "http://d:1", weight: 1 }],
      removed: ["http://b:1"],
      reweighted: [{ url: "http://c:1", weight: 4 }],
    });
  });

  test("changed settings are named; restart-only ones keep their running values", () => {
    const running = config({ port: 8000, policy: "round-robin" });
    const next = config({ port: 9000, policy: "ewma", "health-status": "200-399" });
    expect(changedSettings(running, next)).toEqual(["port", "policy", "health-status"]);
    expect(effectiveConfig(running, next)).toMatchObject({ port: 8000, policy: "ewma" });
  });

  test("what waits for a restart is said with both values; a token only by its name", () => {
    const running = config({ port: 8000, "admin-token": "the-running-token-0123", policy: "round-robin" });
    const next = config({ port: 9000, "admin-token": "the-next-token-456789", policy: "ewma", "access-log-file": "/var/log/lb/access.log" });
    expect(restartPending(running, next)).toEqual([
      { setting: "port", change: "port 8000 → 9000" },
      { setting: "admin-token", change: "admin-token" },
      { setting: "access-log-file", change: "access-log-file (none) → /var/log/lb/access.log" },
    ]);
    expect(restartPending(running, running)).toEqual([]);
  });
});

describe("reload of a running lb", () => {
  const backends = ["a", "b", "c"].map((name) => startBackend(name));
  afterAll(() => Promise.all(backends.map((b) => b.stop())));
  const [a, b, c] = backends as [(typeof backends)[0], (typeof backends)[0], (typeof backends)[0]];
  const file = join(dir, "lb.toml");
  const write = (urls: string[], extra = "", port = 0) =>
    writeFileSync(file, `host = "127.0.0.1"\nport = ${port}\nhealth-interval = "200ms"\nbackends = [${urls.map((u) => `"${u}"`).join(", ")}]\n${extra}`);

  test("a changed file under load: the dropped backend drains out, the new one comes in, nothing fails", async () => {
    write([a.url, b.url]);
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    try {
      const load = steadyLoad(lb.url);
      await load.more(100, "load");
      write([a.url, c.url], 'policy = "least-connections"\n');
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added, 1 draining out, 0 reweighted; changed: policy/, 5000);
      await waitFor(() => load.answers.some((answer) => answer.body === "backend c"), "c to take traffic", 3000);
      const mark = load.answers.length;
      await load.more(200, "load after the reload");
      await load.stop();
      expect(load.failed()).toEqual({});
      expect(load.answers.slice(mark + 50).some((answer) => answer.body === "backend b")).toBe(false);
  
      // An invalid file is rejected with every problem, and the running config stays.
      writeFileSync(file, 'port = "high"\nbackends = ["nope://x"]\n');
      await lb.waitForLine("stderr", /config reload rejected, the running config stays in force: .*port: .*is not a port.*backends\[0\]: /, 5000);
      expect((await fetch(`${lb.url}/`)).status).toBe(200);

      // SIGHUP reloads too; a port change waits for a restart, and the warning says so with both values.
      const reloads = () => lb.stderr.filter((l) => l.includes("config reloaded")).length;
      const before = reloads();
      write([a.url, c.url], "", 1);
      await waitFor(() => reloads() > before, "the reload of the fixed file", 5000);
      lb.proc.kill("SIGHUP");
      await lb.waitForLine("stderr", /\(SIGHUP\)/, 5000);
      expect(lb.stderr.some((l) => l.includes("config reload: port 0 → 1 waits for a restart; until then lb keeps the running value"))).toBe(true);
      expect((await fetch(`${lb.url}/`)).status).toBe(200);
    } finally {
      await lb.kill();
    }
  }, 20_000);

  /** Backends whose GET /health waits for `gate`: a new set whose first check is slow (the test says when it answers). */
  const gatedHealth = (names: string[], gate: Promise<void>) =>
    names.map((name) =>
      startBackend(name, async (request) => {
        if (new URL(request.url).pathname === "/health") await gate;
        return new Response(`backend ${name}`);
      }),
    );
  const checkedOnHealth = 'health-path = "/health"\nhealth-timeout = "5s"\n';

  for (const workers of [1, 2]) {
    test(`make-before-break${workers > 1 ? " with --workers 2" : ""}: a reload onto a new backend set whose first check is slow fails no request; the old set serves until the new one is up, then leaves`, async () => {
      const gate = Promise.withResolvers<void>();
      const next = gatedHealth(["n1", "n2"], gate.promise);
      write([a.url, b.url], checkedOnHealth);
      const lb = await spawnLb(["--config", file, "--no-access-log", ...(workers > 1 ? ["--workers", String(workers)] : [])]);
      const load = steadyLoad(lb.url);
      try {
        await load.more(50, "load on set A");
        write(next.map((n) => n.url), checkedOnHealth);
        await lb.waitForLine("stderr", /config reloaded: 2 backend\(s\) added, 2 draining out/, 5000);
        const mark = load.answers.length;
        await load.more(100, "requests while the new set's first check waits");
        // The new set cannot be up yet: its health answers wait for the gate.
        expect(load.bodies(mark)).toEqual(["backend a", "backend b"]);
        gate.resolve();
        await waitFor(() => load.answers.some((answer) => answer.body === "backend n1" || answer.body === "backend n2"), "the new set to take requests");
        const admin = adminOf(lb);
        await waitFor(async () => Bun.deepEquals((await listedBackends(admin)).map((x) => x.url), next.map((n) => n.url)), "the old set to drain out");
        await load.more(50, "load on set B");
        await load.stop();
        expect(load.failed()).toEqual({});
      } finally {
        gate.resolve();
        await load.stop();
        await lb.kill();
        await Promise.all(next.map((n) => n.stop()));
      }
    }, 20_000);
  }

  test("a dropped backend listed again while it still serves for the new set stays, and the new set leaves", async () => {
    const gate = Promise.withResolvers<void>();
    const [next] = gatedHealth(["n1"], gate.promise) as [TestBackend];
    write([a.url], `${checkedOnHealth}drain-timeout = "1s"\n`);
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    const load = steadyLoad(lb.url);
    try {
      await load.more(50, "load on a");
      write([next.url], `${checkedOnHealth}drain-timeout = "1s"\n`);
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added, 1 draining out/, 5000);
      const mark = load.answers.length;
      await load.more(50, "requests while n1's first check waits");
      expect(load.bodies(mark)).toEqual(["backend a"]);
      expect(lb.stderr.some((line) => line.includes(`${new URL(a.url).host} keep taking requests until a backend the file lists is in rotation (at most 1s)`))).toBe(true);
      write([a.url], `${checkedOnHealth}drain-timeout = "1s"\n`);
      await waitFor(() => lb.stderr.filter((line) => line.includes("config reloaded: 1 backend(s) added, 1 draining out")).length === 2, "the reload back to a");
      const admin = adminOf(lb);
      await waitFor(async () => (await listedBackends(admin)).length === 1, "n1 to leave");
      // Nothing announces a removal that does not happen: outlive the drain timeout a hand-over of a would have ended at.
      await Bun.sleep(1500);
      await load.stop();
      expect(await listedBackends(admin)).toMatchObject([{ url: a.url, state: "healthy" }]);
      expect(load.failed()).toEqual({});
      expect(lb.stderr.some((line) => line.includes("left at the drain timeout"))).toBe(false);
    } finally {
      gate.resolve();
      await load.stop();
      await lb.kill();
      await next.stop();
    }
  }, 20_000);

  test("when no backend of the new set comes up, the old one serves until the drain timeout, then leaves (logged)", async () => {
    const dead = `http://127.0.0.1:${deadPort()}`;
    write([a.url], 'drain-timeout = "1s"\n');
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    const load = steadyLoad(lb.url);
    try {
      await load.more(50, "load on a");
      write([dead], 'drain-timeout = "1s"\n');
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added, 1 draining out/, 5000);
      const mark = load.answers.length;
      await load.more(100, "requests after the reload");
      expect(load.bodies(mark, mark + 100)).toEqual(["backend a"]);
      const left = await lb.waitForLine("stderr", /dropped by the config file, left at the drain timeout \(1s\): no backend the file lists came into rotation/, 5000);
      expect(left).toContain(`backend ${new URL(a.url).host},`);
      await waitFor(() => load.answers.at(-1)?.status === 503, "lb to answer 503 once a has left");
    } finally {
      await load.stop();
      await lb.kill();
    }
  }, 20_000);

  test("a backend listed again while it still drains stays in the pool", async () => {
    const gate = Promise.withResolvers<void>();
    const slow = startBackend("slow", async (request) => {
      if (new URL(request.url).pathname === "/hold") await gate.promise;
      return new Response("backend slow");
    });
    write([a.url, slow.url]);
    const lb = await spawnLb(["--config", file, "--no-access-log", "--drain-timeout", "30s"]);
    try {
      const held = [fetch(`${lb.url}/hold`), fetch(`${lb.url}/hold`)];
      await waitFor(() => slow.seen.some((r) => r.path === "/hold"), "a request held on the slow backend");
      write([a.url]);
      await lb.waitForLine("stderr", /1 draining out/, 5000);
      write([a.url, slow.url]);
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added/, 5000);
      gate.resolve();
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
      await Bun.sleep(100); // let a drain that was (wrongly) still pending act
      expect((await listedBackends(adminOf(lb))).find((x) => x.url === slow.url)?.state).toBe("healthy");
    } finally {
      gate.resolve();
      await lb.kill();
      await slow.stop();
    }
  });

  test("a Kubernetes-style ConfigMap update (the ..data link swapped) is reloaded", async () => {
    const volume = mkdtempSync(join(dir, "configmap-"));
    const version = (name: string, urls: string[]) => {
      mkdirSync(join(volume, name));
      writeFileSync(join(volume, name, "lb.toml"), `host = "127.0.0.1"\nport = 0\nbackends = [${urls.map((u) => `"${u}"`).join(", ")}]\n`);
    };
    version("..v1", [a.url]);
    symlinkSync("..v1", join(volume, "..data"));
    symlinkSync("..data/lb.toml", join(volume, "lb.toml"));
    const lb = await spawnLb(["--config", join(volume, "lb.toml"), "--no-access-log"]);
    try {
      version("..v2", [a.url, b.url]);
      symlinkSync("..v2", join(volume, "..data_tmp"));
      renameSync(join(volume, "..data_tmp"), join(volume, "..data")); // the kubelet's atomic swap
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added/, 5000);
    } finally {
      await lb.kill();
    }
  });

  test("a backend added through the admin API survives a reload that does not mention it", async () => {
    write([a.url]);
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    try {
      const admin = adminOf(lb);
      const added = await fetch(`${admin}/api/backends`, { method: "POST", body: JSON.stringify({ url: b.url }), headers: { "content-type": "application/json" } });
      expect(added.status).toBe(201);
      write([a.url], 'policy = "random"\n');
      await lb.waitForLine("stderr", /config reloaded: 0 backend\(s\) added, 0 draining out/, 5000);
      expect((await listedBackends(admin)).map((x) => x.url)).toEqual([a.url, b.url]);
    } finally {
      await lb.kill();
    }
  });

  test("lb reload and POST /api/reload: what changed, or why not; GET /api/config; the reload metrics", async () => {
    write([a.url], 'retries = 2\nadmin-token = "a-token-long-enough-1234"\n');
    const token = "a-token-long-enough-1234";
    const lb = await spawnLb(["--config", file, "--no-access-log"]);
    const admin = adminOf(lb);
    const adminArgs = ["--admin", admin.replace("http://", ""), "--admin-token", token];
    const api = (path: string) => fetch(`${admin}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const reloads = async () => {
      const text = await (await api("/metrics")).text();
      return Object.fromEntries([...text.matchAll(/^lb_config_reloads_total\{result="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    };
    try {
      const shown = (await (await api("/api/config")).json()) as Record<string, unknown>;
      expect(shown).toMatchObject({ retries: 2, "health-interval": "200ms", "admin-token": "[redacted]", port: 0 });
      expect(JSON.stringify(shown)).not.toContain(token);

      write([a.url, b.url], `retries = 4\nadmin-token = "${token}"\n`);
      await lb.waitForLine("stderr", /config reloaded: 1 backend\(s\) added/, 5000); // the file watcher's reload
      const ok = await runCommand(["reload", ...adminArgs]);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toStartWith("config reloaded: 0 backend(s) added, 0 draining out, 0 reweighted");
      expect(((await (await api("/api/config")).json()) as { retries: number }).retries).toBe(4);

      write([a.url], 'retries = "many"\n');
      await lb.waitForLine("stderr", /config reload rejected/, 5000);
      const refused = await runCommand(["reload", ...adminArgs]);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toMatch(/^lb: reload refused, the running config stays in force: .*lb\.toml:\d+: retries: "many"/);
      expect(await reloads()).toEqual({ success: 2, failure: 2 });
      const metrics = await (await api("/metrics")).text();
      expect(metrics).toMatch(/^lb_config_last_reload_success_timestamp_seconds \d{10}$/m);
      expect(metrics).toMatch(/^lb_build_info\{version="[^"]+",commit="source",bun="[^"]+"\} 1$/m);
      expect(((await (await api("/api/stats")).json()) as { version: string }).version).toEndWith("(source)");

      // A restart-only change: the rest is applied; the API, lb reload (exit 3) and the log say the port waits.
      write([a.url], `retries = 3\nadmin-token = "${token}"\n`, 1);
      await lb.waitForLine("stderr", /config reloaded: 0 backend\(s\) added, 1 draining out, 0 reweighted; changed: retries; waiting for a restart: port 0 → 1 /, 5000);
      const partial = await runCommand(["reload", ...adminArgs]);
      expect(partial.stdout.trim()).toBe("config reloaded: 0 backend(s) added, 0 draining out, 0 reweighted; waiting for a restart: port 0 → 1");
      expect(partial.stderr.trim()).toBe("lb: port changes only on a restart: lb runs on with the running value until then");
      expect(partial.code).toBe(3);
      const answer = await fetch(`${admin}/api/reload`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(200);
      expect(await answer.json()).toMatchObject({ applied: true, restartNeeded: ["port"] });
      // One warning per reload (the file's, lb reload's, the API's); the process writes the last one as it answers.
      const waits = () => lb.stderr.filter((l) => l.includes("config reload: port 0 → 1 waits for a restart")).length;
      await waitFor(() => waits() === 3, () => `three warnings, ${waits()} so far`);
      expect((await fetch(`${lb.url}/`)).status).toBe(200);
    } finally {
      await lb.kill();
    }
  });

  test("without --config there is nothing to reload: 409", async () => {
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", a.url]);
    try {
      const admin = adminOf(lb);
      const response = await fetch(`${admin}/api/reload`, { method: "POST" });
      expect(response.status).toBe(409);
      expect(((await response.json()) as { error: string }).error).toContain("started without --config");
    } finally {
      await lb.kill();
    }
  });
});
