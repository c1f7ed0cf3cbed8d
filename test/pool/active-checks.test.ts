/** Active check rules and passive ejection, against real backends whose answers the test controls. */
import { describe, expect, test } from "bun:test";
import { type InProcessLb, type TestBackend, deadPort, startBackend, stoppedAfterEach, waitFor } from "../helpers.ts";

const { cleanup, backend, lbFor } = stoppedAfterEach({ "health-path": "/health", "health-jitter": 0 });

/** A backend whose health endpoint answers whatever `state` says at the moment. */
function controllable(name: string) {
  const state = { status: 200, body: "ok", apiStatus: 200 };
  const server: TestBackend = backend(name, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/health") return new Response(request.method === "HEAD" ? null : state.body, { status: state.status });
    return new Response(name, { status: state.apiStatus });
  });
  return { server, state, checks: () => server.seen.filter((r) => r.path === "/health") };
}

const status = (lb: InProcessLb, i = 0) => lb.lb.pool.backends[i]!.health.status;

describe("active checks", () => {
  test("fall 3 / rise 2: down only after three failures in a row, back only after two passes", async () => {
    const b = controllable("b");
    const lb = await lbFor([b.server.url], { "health-interval": "100ms", "health-fall": 3, "health-rise": 2 });
    b.state.status = 500;
    const failedFrom = b.checks().length;
    await waitFor(() => status(lb) === "unhealthy", "down");
    expect(b.checks().length - failedFrom).toBeGreaterThanOrEqual(3);
    b.state.status = 200;
    const passedFrom = b.checks().length;
    await waitFor(() => status(lb) === "healthy", "up");
    expect(b.checks().length - passedFrom).toBeGreaterThanOrEqual(2);
    expect(lb.logs.filter((l) => l.includes("went down"))).toEqual([expect.stringContaining("status 500, expected 200")]);
  });

  test("expected statuses as ranges, a required body text, method, and extra headers with Host", async () => {
    const b = controllable("b");
    const lb = await lbFor([b.server.url], {
      "health-interval": "100ms",
      "health-status": "200-299,418",
      "health-body": "ready",
      "health-method": "GET",
      "health-header": ["Host: app.internal", "X-Probe: lb"],
    });
    expect(status(lb)).toBe("unhealthy"); // "ok" lacks "ready"
    expect(lb.logs.join("\n")).toContain('status 200 but the body lacks "ready"');
    b.state.body = "all ready";
    b.state.status = 418;
    await waitFor(() => status(lb) === "healthy", "418 with the body to pass");
    const check = b.checks().at(-1)!;
    expect(check.method).toBe("GET");
    expect(check.headers.get("host")).toBe("app.internal");
    expect(check.headers.get("x-probe")).toBe("lb");
    expect(check.headers.get("user-agent")).toStartWith("lb-health-check/");
    b.state.status = 302;
    await waitFor(() => status(lb) === "unhealthy", "302 to fail");
    b.state.status = 226; // inside 200-299, not only its ends
    await waitFor(() => status(lb) === "healthy", "226 to pass");
  });

  test("HEAD checks, and the faster down interval while a backend is down", async () => {
    const b = controllable("b");
    // Down throughout: its checks, at the down interval, are the clock for b's once b is up.
    const stillDown = controllable("still-down");
    b.state.status = stillDown.state.status = 503;
    const lb = await lbFor([b.server.url, stillDown.server.url], { "health-interval": "5s", "health-down-interval": "50ms", "health-method": "HEAD" });
    expect(status(lb)).toBe("unhealthy");
    await waitFor(() => b.checks().length >= 4, "several checks at the down interval", 2000);
    expect(b.checks().every((c) => c.method === "HEAD")).toBe(true);
    b.state.status = 200;
    await waitFor(() => status(lb) === "healthy", "up", 2000);
    const upAt = b.checks().length;
    const clockAt = stillDown.checks().length;
    // Eight more checks 50 ms apart span at least 350 ms; at the 5 s up interval, none of b's falls among them.
    await waitFor(() => stillDown.checks().length >= clockAt + 8, "eight more checks of the backend still down", 3000);
    expect(b.checks().length).toBe(upAt);
  });

  test("a backend still starting when lb does is checked again within a second, not a whole interval later", async () => {
    const port = deadPort();
    const lb = await lbFor([`http://127.0.0.1:${port}`], { "health-interval": "1m" });
    expect(status(lb)).toBe("unhealthy");
    const late = startBackend("late", () => new Response("ok"), port);
    cleanup.push(late.stop);
    const started = performance.now();
    await waitFor(() => status(lb) === "healthy", "the late backend to be checked again", 2000);
    expect(performance.now() - started).toBeLessThan(1000);
    expect((await fetch(`${lb.url}/`)).status).toBe(200);
  });

  test("a backend down from the start gets one quick second check, then the interval", async () => {
    const b = controllable("down");
    b.state.status = 503;
    await lbFor([b.server.url], { "health-interval": "1m" });
    await waitFor(() => b.checks().length >= 2, "the quick second check", 2000);
    // Time passing is what is tested (the checker's timers take no clock to inject): a repeated quick check would come
    // 0.5 s after the second.
    await Bun.sleep(1000);
    expect(b.checks().length).toBe(2);
  });
});

describe("passive checks (outlier detection)", () => {
  test("five 5xx in a row eject a backend; its traffic goes elsewhere; it comes back after the ejection", async () => {
    const bad = controllable("bad");
    const good = controllable("good");
    bad.state.apiStatus = 500;
    const lb = await lbFor([bad.server.url, good.server.url], { "health-interval": "1m", "outlier-ejection": "300ms" });
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) answers.push(await (await fetch(`${lb.url}/api`)).text());
    expect(answers.filter((a) => a === "bad")).toHaveLength(5);
    expect(answers.slice(10).every((a) => a === "good")).toBe(true);
    expect(lb.logs.some((l) => l.includes(`${bad.server.port} ejected for 300ms`))).toBe(true);
    await waitFor(() => lb.lb.pool.available().length === 2, "the ejection to end", 2000);
    expect(lb.logs.some((l) => l.includes("back in rotation"))).toBe(true);
  });

  test("never ejects more than the max share: with both failing, one stays in rotation", async () => {
    const one = controllable("one");
    const two = controllable("two");
    one.state.apiStatus = two.state.apiStatus = 502;
    const lb = await lbFor([one.server.url, two.server.url], { "health-interval": "1m", "outlier-errors": 2 });
    for (let i = 0; i < 12; i++) expect((await fetch(`${lb.url}/api`)).status).toBe(502);
    expect(lb.lb.pool.available()).toHaveLength(1);
    expect(lb.logs.some((l) => l.includes("stays in rotation"))).toBe(true);
  });
});

describe("health answers with huge bodies", () => {
  test("a health path that streams without end is read only 64 KiB deep and still passes", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    // Reading the whole answer would never end: the check would time out and call the backend down.
    const endless = backend("endless", () => new Response(new ReadableStream({ pull: (controller) => controller.enqueue(chunk) })));
    const lb = await lbFor([endless.url], { "health-path": "/", "health-interval": "1m", "health-body": "aaa" });
    expect(status(lb)).toBe("healthy");
  });
});
