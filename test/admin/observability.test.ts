/** Request IDs, access-log formats and files (with logrotate's SIGUSR1). */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clfTime } from "../../src/log/access-log.ts";
import { requestIdOf } from "../../src/proxy/trip.ts";
import { spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-logs-"));
const backend = startBackend("a");
afterAll(async () => {
  await backend.stop();
  rmSync(dir, { recursive: true, force: true });
});
const baseArgs = ["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s"];

describe("request IDs", () => {
  test("a sane incoming X-Request-Id is kept; anything else is replaced by a UUID", () => {
    expect(requestIdOf("abc-123_XYZ.9")).toBe("abc-123_XYZ.9");
    expect(requestIdOf(null)).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdOf("has space")).toMatch(/^[0-9a-f-]{36}$/);
    expect(requestIdOf("x".repeat(129))).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("the id reaches the backend, comes back to the client, and is in the access line; lb's own errors carry one too", async () => {
    const lb = await startTestLb([backend.url]);
    try {
      const kept = await fetch(`${lb.url}/rid`, { headers: { "x-request-id": "trace-42" } });
      expect(kept.headers.get("x-request-id")).toBe("trace-42");
      expect(backend.seen.at(-1)!.headers.get("x-request-id")).toBe("trace-42");
      expect(lb.access.at(-1)!.requestId).toBe("trace-42");
      const fresh = await fetch(`${lb.url}/rid`);
      const id = fresh.headers.get("x-request-id")!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(backend.seen.at(-1)!.headers.get("x-request-id")).toBe(id);
    } finally {
      await lb.stop();
    }
    const down = await startTestLb(["http://127.0.0.1:1"]);
    try {
      const response = await fetch(`${down.url}/`);
      expect(response.status).toBe(503);
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await down.stop();
    }
  });
});

describe("access log formats and files", () => {
  test("combined format, as Apache and nginx write it", async () => {
    const lb = await spawnLb([...baseArgs, "--access-log-format", "combined", backend.url]);
    try {
      await (await fetch(`${lb.url}/c?q=1`, { headers: { referer: "http://ref.example/", "user-agent": 'agent "quoted"' } })).text();
      const line = await lb.waitForLine("stdout", /GET \/c\?q=1/);
      expect(line).toMatch(
        /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/c\?q=1 HTTP\/1\.1" 200 9 "http:\/\/ref\.example\/" "agent \\"quoted\\""$/,
      );
    } finally {
      await lb.kill();
    }
    expect(clfTime(Date.UTC(2026, 10, 5, 7, 8, 9))).toBe("05/Nov/2026:07:08:09 +0000");
  });

  test("json access lines carry host, user agent, bytes in and tls; json lifecycle lines carry event, backend, state, reason", async () => {
    // A backend that leaves after the start: the first health round is a summary, its changes are lines of their own.
    const going = startBackend("going");
    const lb = await spawnLb([...baseArgs, "--log-format", "json", "--access-log-format", "json", backend.url, going.url]);
    try {
      await (await fetch(`${lb.url}/j`, { method: "POST", body: "x".repeat(300), headers: { "user-agent": "probe/1", host: "shop.example" } })).text();
      const line = JSON.parse(await lb.waitForLine("stdout", /"path":"\/j"/));
      expect(line).toMatchObject({ method: "POST", path: "/j", status: 200, bytes_in: 300, tls: false, host: "shop.example", user_agent: "probe/1" });
      await going.stop();
      const down = JSON.parse(await lb.waitForLine("stderr", new RegExp(`127\\.0\\.0\\.1:${going.port} went down`), 3000));
      expect(down).toMatchObject({ level: "warn", event: "health", backend: `127.0.0.1:${going.port}`, state: "unhealthy", reason: "connection refused" });
    } finally {
      await lb.kill();
    }
  });

  test("a log file that cannot be written (disk full) or reopened costs lines, never the process", async () => {
    const lb = await spawnLb([...baseArgs, "--access-log-file", "/dev/full", backend.url]);
    try {
      for (let i = 0; i < 3; i++) expect((await fetch(`${lb.url}/full`)).status).toBe(200);
      await lb.waitForLine("stderr", /access log \/dev\/full: lines dropped/);
      expect((await fetch(`${lb.url}/still`)).status).toBe(200);
      expect(lb.stderr.filter((l) => l.includes("lines dropped"))).toHaveLength(1);
    } finally {
      await lb.kill();
    }
    const gone = join(dir, "gone");
    mkdirSync(gone);
    const lb2 = await spawnLb([...baseArgs, "--access-log-file", join(gone, "a.log"), backend.url]);
    try {
      rmSync(gone, { recursive: true });
      lb2.proc.kill("SIGUSR1");
      await lb2.waitForLine("stderr", /could not be reopened/);
      expect((await fetch(`${lb2.url}/after`)).status).toBe(200);
    } finally {
      await lb2.kill();
    }
  }, 15_000); // two lb processes: more than the default 5 s when the whole suite runs beside it

  test("a file, reopened on SIGUSR1 after logrotate moved it", async () => {
    const file = join(dir, "access.log");
    const lb = await spawnLb([...baseArgs, "--access-log-file", file, "--access-log-format", "json", backend.url]);
    try {
      await (await fetch(`${lb.url}/one`)).text();
      await waitFor(() => existsSync(file) && readFileSync(file, "utf8").includes('"path":"/one"'), "the first line in the file");
      renameSync(file, `${file}.1`);
      lb.proc.kill("SIGUSR1");
      await lb.waitForLine("stderr", /access log reopened/);
      await (await fetch(`${lb.url}/two`)).text();
      await waitFor(() => existsSync(file) && readFileSync(file, "utf8").includes('"path":"/two"'), "the next line in a new file");
      expect(readFileSync(`${file}.1`, "utf8")).not.toContain("/two");
      expect(JSON.parse(readFileSync(file, "utf8").trim())).toMatchObject({ path: "/two", status: 200, method: "GET" });
      expect(lb.stdout.join("")).toBe("");
    } finally {
      await lb.kill();
    }
  });
});
