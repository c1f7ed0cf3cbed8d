/** Access lines are built byte by byte (access-log.ts); they must read back as exactly what was logged. */
import { describe, expect, test } from "bun:test";
import { type AccessEntry, AccessLog, LineBuffer } from "../../src/log/access-log.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("LineBuffer", () => {
  test("text of any script, as UTF-8, until taken", () => {
    const out = new LineBuffer();
    out.text("/é → 日本 😀 ");
    out.text("ascii");
    expect(decode(out.take())).toBe("/é → 日本 😀 ascii");
    expect(out.length).toBe(0);
  });

  test("what take() hands over is its own: the lines written after it do not change it", () => {
    const out = new LineBuffer();
    out.text("first line\n");
    const first = out.take();
    out.text("SECOND LINE\n");
    expect(decode(first)).toBe("first line\n");
    expect(decode(out.take())).toBe("SECOND LINE\n");
  });
});

describe("AccessLog", () => {
  const ENDED_AT = Date.UTC(2026, 10, 25, 17, 44, 36, 123);
  const entry = (path: string, upstreamMs: number): AccessEntry => ({
    requestId: "req-1",
    client: "10.0.0.9",
    method: "GET",
    path,
    status: 503,
    backend: "10.0.0.5:8080",
    attempts: 2,
    upstreamMs,
    totalMs: 1.25,
    bytes: 1024,
    bytesIn: 77,
    tls: true,
    userAgent: 'curl "8"',
    referer: "https://x/",
    host: "shop.example:8443",
    endedAt: ENDED_AT,
  });

  test("json lines parse back to the entry, escaping included, one flush for all of them", () => {
    const chunks: Uint8Array[] = [];
    const log = new AccessLog("json", { write: (chunk) => void chunks.push(chunk as Uint8Array), flush() {} });
    const paths = ["/a?b=1", '/quote"back\\slash', "/ünï/日本", "/ctl\u0001"];
    paths.forEach((path, i) => log.write(entry(path, i * 1.06)));
    log.flush();
    expect(chunks).toHaveLength(1);
    const lines = decode(chunks[0]!).trimEnd().split("\n").map((line) => JSON.parse(line));
    expect(lines.map((l) => l.path)).toEqual(paths);
    expect(lines.map((l) => l.upstream_ms)).toEqual([0, 1.1, 2.1, 3.2]);
    expect(lines[0]).toMatchObject({ request_id: "req-1", client: "10.0.0.9", method: "GET", status: 503, backend: "10.0.0.5:8080", attempts: 2, total_ms: 1.3, bytes: 1024 });
    expect(lines[0]).toMatchObject({ bytes_in: 77, tls: true, host: "shop.example:8443", user_agent: 'curl "8"' });
    expect(lines[0].time).toBe("2026-11-25T17:44:36.123Z");
  });

  test("durations are JSON numbers to a tenth of a millisecond, none below zero", () => {
    const chunks: Uint8Array[] = [];
    const log = new AccessLog("json", { write: (chunk) => void chunks.push(chunk as Uint8Array), flush() {} });
    const durations = [-0.4, Number.NaN, 0.05, 0.04, 9.96, 12345.67, 7];
    for (const ms of durations) log.write(entry("/", ms));
    log.flush();
    const lines = decode(chunks[0]!).trimEnd().split("\n").map((line) => JSON.parse(line));
    expect(lines.map((l) => l.upstream_ms)).toEqual([0, 0, 0.1, 0, 10, 12345.7, 7]);
  });

  test("combined-time: the combined line, then the request's time in seconds (nginx's $request_time)", () => {
    let text = "";
    const log = new AccessLog("combined-time", { write: (chunk) => void (text += decode(chunk as Uint8Array)), flush() {} });
    log.write(entry("/x", 1));
    log.flush();
    expect(text).toMatch(/^10\.0\.0\.9 - - \[[^\]]+\] "GET \/x HTTP\/1\.1" 503 1024 "https:\/\/x\/" "curl \\"8\\"" 0\.001\n$/);
  });

  test("combined lines quote what the client sent", () => {
    let text = "";
    const log = new AccessLog("combined", { write: (chunk) => void (text += decode(chunk as Uint8Array)), flush() {} });
    log.write(entry("/x", 1));
    log.flush();
    const request = `"GET /x HTTP/1.1" 503 1024`;
    expect(text).toBe(`10.0.0.9 - - [25/Nov/2026:17:44:36 +0000] ${request} "https://x/" "curl \\"8\\""\n`);
  });

  test("a full buffer is flushed before the next line, so no line is ever split", () => {
    const chunks: string[] = [];
    const log = new AccessLog("json", { write: (chunk) => void chunks.push(decode(chunk as Uint8Array)), flush() {} });
    const long = `/${"p".repeat(15_000)}`;
    for (let i = 0; i < 100; i++) log.write(entry(long, i));
    log.flush();
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) for (const line of chunk.trimEnd().split("\n")) expect(JSON.parse(line).path).toBe(long);
    expect(chunks.join("").split("\n").length - 1).toBe(100);
  });
});
