import { describe, expect, test } from "bun:test";
import { type HealthState, initialHealth, markDown, observe } from "../../src/pool/health.ts";
import { Pool, type PoolEvent } from "../../src/pool/pool.ts";
import { backendName, createBackend } from "../../src/pool/backend.ts";
import { describeStatuses, nextCheckDelay, statusPasses } from "../../src/pool/checker.ts";

const pass = { ok: true, reason: "status 200" };
const fail = { ok: false, reason: "status 500" };
const run = (rules: { rise: number; fall: number }, results: boolean[], start: HealthState = initialHealth(0)) =>
  results.map((ok, i) => (start = observe(start, ok ? pass : fail, rules, i + 1)).status);

describe("health state machine", () => {
  test("an unchecked backend takes its first result as it is", () => {
    expect(observe(initialHealth(0), pass, { rise: 3, fall: 3 }, 5)).toMatchObject({ status: "healthy", passes: 1, since: 5 });
    expect(observe(initialHealth(0), fail, { rise: 3, fall: 3 }, 5)).toMatchObject({ status: "unhealthy", failures: 1, reason: "status 500" });
  });

  test("rise 1 / fall 1 flips on every change", () => {
    expect(run({ rise: 1, fall: 1 }, [true, false, true, true, false])).toEqual(["healthy", "unhealthy", "healthy", "healthy", "unhealthy"]);
  });

  test("fall 3 needs three failures in a row; a pass in between resets the count", () => {
    expect(run({ rise: 1, fall: 3 }, [true, false, false, true, false, false, false])).toEqual([
      "healthy", "healthy", "healthy", "healthy", "healthy", "healthy", "unhealthy",
    ]);
  });

  test("rise 2 needs two passes in a row to come back", () => {
    expect(run({ rise: 2, fall: 1 }, [false, true, false, true, true])).toEqual([
      "unhealthy", "unhealthy", "unhealthy", "unhealthy", "healthy",
    ]);
  });

  test("since changes only when the status does", () => {
    let state = observe(initialHealth(0), pass, { rise: 1, fall: 1 }, 10);
    state = observe(state, pass, { rise: 1, fall: 1 }, 20);
    expect(state.since).toBe(10);
    expect(state.passes).toBe(2);
  });

  test("a passive connect failure takes a healthy backend down at once, and checks bring it back", () => {
    const up = observe(initialHealth(0), pass, { rise: 1, fall: 3 }, 1);
    const down = markDown(up, "connection refused", 2);
    expect(down).toMatchObject({ status: "unhealthy", reason: "connection refused", since: 2, passes: 0 });
    expect(markDown(down, "again", 3)).toBe(down);
    expect(observe(down, pass, { rise: 1, fall: 3 }, 4).status).toBe("healthy");
  });
});

describe("pool", () => {
  test("reports each flip once and keeps the available list in configured order", () => {
    const changes: PoolEvent[] = [];
    const pool = new Pool(["http://a:1", "http://b:1", "http://c:1"].map((url) => ({ url, weight: 1 })), {
      listener: (event) => changes.push(event),
      clock: () => 7,
    });
    const [a, b, c] = pool.backends;
    pool.recordCheck(c!, pass);
    pool.recordCheck(a!, pass);
    pool.recordCheck(b!, fail);
    pool.recordCheck(a!, pass);
    expect(pool.available().map((x) => x.name)).toEqual(["a:1", "c:1"]);
    pool.recordConnectFailure(a!, "connection refused");
    pool.recordConnectFailure(a!, "connection refused");
    expect(pool.available().map((x) => x.name)).toEqual(["c:1"]);
    expect(changes.map((ch) => (ch.type === "health" ? `${ch.backend.name} ${ch.from.status}->${ch.to.status}` : ch.type))).toEqual([
      "c:1 unknown->healthy",
      "a:1 unknown->healthy",
      "b:1 unknown->unhealthy",
      "a:1 healthy->unhealthy",
    ]);
  });
});

describe("stale checks", () => {
  test("a pass from a check that began before a connect failure does not bring the backend back", () => {
    let now = 100;
    const pool = new Pool([{ url: "http://a:1", weight: 1 }], { clock: () => now });
    const [a] = pool.backends;
    pool.recordCheck(a!, pass, 100);
    now = 200;
    pool.recordConnectFailure(a!, "connection refused");
    pool.recordCheck(a!, pass, 150); // began at 150, before the failure at 200
    expect(a!.health.status).toBe("unhealthy");
    pool.recordCheck(a!, pass, 250); // a check begun after the failure counts
    expect(a!.health.status).toBe("healthy");
  });
});

describe("removed backends", () => {
  test("late results for a removed backend (requests still finishing) change nothing and report nothing", () => {
    const events: PoolEvent[] = [];
    const pool = new Pool([{ url: "http://a:1", weight: 1 }], { listener: (e) => events.push(e) });
    const [a] = pool.backends;
    pool.recordCheck(a!, pass);
    pool.remove(a!);
    const before = events.length;
    pool.recordConnectFailure(a!, "connection refused");
    pool.recordOutcome(a!, true);
    pool.recordCheck(a!, fail);
    expect(events.length).toBe(before);
    expect(a!.health.status).toBe("healthy");
  });
});

describe("check scheduling and matching", () => {
  const settings = {
    method: "GET" as const,
    path: "/",
    statuses: [[200, 299], [304, 304]] as Array<[number, number]>,
    body: "",
    headers: [],
    intervalMs: 10_000,
    downIntervalMs: 1000,
    timeoutMs: 1000,
    jitterPercent: 20,
    tls: undefined,
  };
  const backend = (status: "healthy" | "unhealthy") => ({ ...createBackend({ url: "http://a:1", weight: 1 }, 0), health: { ...initialHealth(0), status } });

  test("statuses match lists and ranges", () => {
    expect([200, 250, 299, 304].every((s) => statusPasses(s, settings.statuses))).toBe(true);
    expect([199, 300, 303, 500].some((s) => statusPasses(s, settings.statuses))).toBe(false);
    expect(describeStatuses(settings.statuses)).toBe("200-299,304");
  });

  test("jitter stays within ± the set share; a down backend uses the down interval", () => {
    expect(nextCheckDelay(backend("healthy"), settings, () => 0)).toBe(8000);
    expect(nextCheckDelay(backend("healthy"), settings, () => 0.999999)).toBe(12_000);
    expect(nextCheckDelay(backend("healthy"), settings, () => 0.5)).toBe(10_000);
    const delays = Array.from({ length: 1000 }, () => nextCheckDelay(backend("healthy"), settings, Math.random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(8000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(12_000);
    expect(new Set(delays).size).toBeGreaterThan(100);
    expect(nextCheckDelay(backend("unhealthy"), settings, () => 0.5)).toBe(1000);
    expect(nextCheckDelay(backend("unhealthy"), { ...settings, downIntervalMs: 0 }, () => 0.5)).toBe(10_000);
  });

  test("a backend that recovers is marked as recovered (for slow start); one up since startup is not", () => {
    const up = observe(initialHealth(0), pass, { rise: 1, fall: 1 }, 1);
    expect(up.recovered).toBe(false);
    const back = observe(observe(up, fail, { rise: 1, fall: 1 }, 2), pass, { rise: 1, fall: 1 }, 3);
    expect(back).toMatchObject({ status: "healthy", recovered: true, since: 3 });
  });

  test("a check that got no answer is told apart from an error answer or a refused connection", () => {
    const rules = { rise: 1, fall: 2 };
    const up = observe(initialHealth(0), pass, rules, 1);
    const silent = observe(up, { ok: false, reason: "no answer within 2000ms", unanswered: true }, rules, 2);
    expect(silent).toMatchObject({ status: "healthy", unanswered: true }); // fall 2: not down yet
    expect(observe(silent, { ok: false, reason: "no answer within 2000ms", unanswered: true }, rules, 3)).toMatchObject({
      status: "unhealthy",
      unanswered: true,
    });
    expect(observe(silent, fail, rules, 3)).toMatchObject({ status: "unhealthy", unanswered: false });
    expect(observe(silent, pass, rules, 3).unanswered).toBe(false);
    expect(markDown(silent, "connection refused", 3)).toMatchObject({ status: "unhealthy", unanswered: false });
  });
});

describe("backend ids", () => {
  test("always name the port, so an id typed with the default port finds the backend", () => {
    expect(backendName("http://example.com")).toBe("example.com:80");
    expect(backendName("https://example.com")).toBe("example.com:443");
    expect(backendName("http://[::1]:8080")).toBe("[::1]:8080");
    expect(backendName("http://127.0.0.1:9000")).toBe("127.0.0.1:9000");
  });
});
