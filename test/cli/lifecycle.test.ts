/** lb as a process: graceful shutdown on signals, and what it logs. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deadPort, spawnLb, startBackend, waitFor } from "../helpers.ts";

const slow = startBackend("slow", async (request) => {
  const wait = Number(new URL(request.url).searchParams.get("wait") ?? 0);
  await Bun.sleep(wait);
  return new Response(`waited ${wait}`, { headers: { "set-cookie": "sid=secret-cookie" } });
});
afterAll(() => slow.stop());

const baseArgs = ["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s"];

describe("graceful shutdown", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal}: stops accepting, lets the request in flight finish, exits 0`, async () => {
      const lb = await spawnLb([...baseArgs, slow.url]);
      const inFlight = fetch(`${lb.url}/?wait=700`);
      await waitFor(() => slow.seen.some((r) => r.path === "/?wait=700"), "the request to reach the backend");
      lb.proc.kill(signal);
      await lb.waitForLine("stderr", /draining 1 in-flight/);
      const response = await inFlight;
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("waited 700");
      expect(await lb.proc.exited).toBe(0);
      expect(fetch(`${lb.url}/`)).rejects.toThrow();
      slow.seen.length = 0;
    });
  }

  test("SIGHUP without a config file is logged, not fatal", async () => {
    const lb = await spawnLb([...baseArgs, slow.url]);
    lb.proc.kill("SIGHUP");
    await lb.waitForLine("stderr", /SIGHUP: no --config file to reload/);
    expect((await fetch(`${lb.url}/`)).status).toBe(200);
    expect(await lb.kill()).toBe(0);
  }, 20_000); // starts lb and waits on its events: seconds on a busy machine

  test("the drain timeout bounds the wait", async () => {
    const lb = await spawnLb([...baseArgs, "--drain-timeout", "300ms", slow.url]);
    const stuck = fetch(`${lb.url}/?wait=5000`).catch((error) => error);
    await waitFor(() => slow.seen.some((r) => r.path === "/?wait=5000"), "the request to reach the backend");
    const started = Date.now();
    lb.proc.kill("SIGTERM");
    expect(await lb.proc.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(2500);
    expect(lb.stderr.some((l) => l.includes("drain timeout: closing 1 request"))).toBe(true);
    expect(await stuck).toBeInstanceOf(Error);
  });
});

describe("logging", () => {
  test("json lifecycle lines on stderr, one json access line per request on stdout", async () => {
    const lb = await spawnLb([...baseArgs, "--log-format", "json", slow.url]);
    await (await fetch(`${lb.url}/a/b?c=d`, { method: "PUT", body: "x" })).text();
    const line = await lb.waitForLine("stdout", /"path":"\/a\/b\?c=d"/);
    expect(JSON.parse(line)).toMatchObject({
      client: "127.0.0.1",
      method: "PUT",
      path: "/a/b?c=d",
      status: 200,
      backend: new URL(slow.url).host,
      attempts: 1,
      bytes: "waited 0".length,
    });
    expect(JSON.parse(line).total_ms).toBeGreaterThanOrEqual(JSON.parse(line).upstream_ms);
    for (const l of lb.stderr) expect(() => JSON.parse(l)).not.toThrow();
    const startup = JSON.parse(lb.stderr.find((l) => l.includes("listening"))!);
    expect(startup).toMatchObject({ level: "info" });
    expect(startup.msg).toContain(slow.url);
    await lb.kill();
  });

  test("pretty access lines, and --no-access-log turns them off", async () => {
    const pretty = await spawnLb([...baseArgs, "--log-format", "pretty", slow.url]);
    await (await fetch(`${pretty.url}/pretty`)).text();
    const line = await pretty.waitForLine("stdout", /GET \/pretty/);
    expect(line).toMatch(/127\.0\.0\.1 GET \/pretty 200 → 127\.0\.0\.1:\d+ attempts=1 upstream=[\d.]+ms total=[\d.]+ms bytes=8 id=[0-9a-f-]{36}$/);
    await pretty.kill();

    const quiet = await spawnLb([...baseArgs, "--no-access-log", slow.url]);
    await (await fetch(`${quiet.url}/quiet`)).text();
    await quiet.kill();
    expect(quiet.stdout.join("")).toBe("");
  });

  test("debug shows each request and response line, with secrets redacted", async () => {
    const lb = await spawnLb([...baseArgs, "--log-level", "debug", "--log-format", "pretty", slow.url]);
    await (await fetch(`${lb.url}/debug`, { headers: { authorization: "Bearer top-secret", cookie: "sid=secret-cookie" } })).text();
    await lb.waitForLine("stderr", /Response from server: HTTP\/1\.1 200/);
    const text = lb.stderr.join("\n");
    expect(text).toContain("Received request from 127.0.0.1");
    expect(text).toContain("GET /debug HTTP/1.1");
    expect(text).toContain("authorization: [redacted]");
    expect(text).not.toContain("top-secret");
    expect(text).not.toContain("secret-cookie");
    await lb.kill();
  });

  test("a backend that goes down and comes back is logged once each way", async () => {
    const flaky = startBackend("flaky");
    const lb = await spawnLb([...baseArgs, "--health-interval", "200ms", flaky.url, slow.url]);
    await flaky.stop();
    await lb.waitForLine("stderr", new RegExp(`${flaky.port} went down: connection refused`), 3000);
    const again = startBackend("flaky", undefined, flaky.port);
    await lb.waitForLine("stderr", new RegExp(`${flaky.port} is back up \\(status 200\\)`), 3000);
    // Several more rounds pass without repeating either line.
    await waitFor(() => again.seen.length >= 4, "four more health checks", 3000);
    expect(lb.stderr.filter((l) => l.includes(`${flaky.port} went down`))).toHaveLength(1);
    expect(lb.stderr.filter((l) => l.includes(`${flaky.port} is back up`))).toHaveLength(1);
    await lb.kill();
    await again.stop();
  });

  test("the first health round is one line (which are down, and why); a backend never up comes up, not back; the alarm waits for a loss", async () => {
    const [first, second] = [deadPort(), deadPort()];
    const lb = await spawnLb([...baseArgs, "--health-interval", "200ms", `http://127.0.0.1:${first}`, `http://127.0.0.1:${second}`]);
    const messages = () => lb.stderr.map((line) => (JSON.parse(line) as { msg: string }).msg);
    try {
      const listening = messages().findIndex((m) => m.startsWith("lb listening"));
      expect(messages().slice(0, listening)).toEqual([
        `0 of 2 backends healthy; down: 127.0.0.1:${first} (connection refused), 127.0.0.1:${second} (connection refused); answering 503 until one comes up`,
      ]);
      const late = startBackend("late", undefined, first);
      await lb.waitForLine("stderr", new RegExp(`backend 127\\.0\\.0\\.1:${first} is up \\(status 200\\)`), 3000);
      await late.stop();
      await lb.waitForLine("stderr", /no healthy backends/, 3000);
      expect(messages().filter((m) => /^backend |no healthy backends/.test(m))).toEqual([
        `backend 127.0.0.1:${first} is up (status 200)`,
        `backend 127.0.0.1:${first} went down: connection refused`,
        "no healthy backends: answering 503 for it until one recovers",
      ]);
    } finally {
      await lb.kill();
    }
  });

  test("the startup line names the hooks file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lb-startup-"));
    const hooks = join(dir, "lb.hooks.ts");
    writeFileSync(hooks, "export function onRequest() {}\n");
    const lb = await spawnLb([...baseArgs, "--hooks", hooks, slow.url]);
    try {
      expect(lb.stderr.find((line) => line.includes("lb listening"))).toContain(` · hooks ${hooks}`);
    } finally {
      await lb.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
