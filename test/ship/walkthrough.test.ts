/**
 * The README walkthrough, as a new user would try it: three `python3 -m http.server` backends, lb as a real process,
 * curl as the client; one backend is killed and started again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LbProcess, type PythonBackend, spawnLb, startPythonBackend, waitFor } from "../helpers.ts";

const root = mkdtempSync(join(tmpdir(), "lb-walkthrough-"));
const backends: PythonBackend[] = [];
let lb: LbProcess;

/** Each backend's directory says which backend it is; the port is only known once it listens. */
function siteFor(n: number): string {
  const dir = join(root, `server${n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.html"), `Hello from the web server number ${n}\n`);
  return dir;
}

async function curl(url: string): Promise<{ code: number; body: string }> {
  const proc = Bun.spawn(["curl", "-s", "-w", "\n%{http_code}", url], { stdout: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  const lines = out.trimEnd().split("\n");
  return { code: Number(lines.pop()), body: lines.join("\n") };
}

const answeredBy = (body: string) => Number(/number (\d)/.exec(body)?.[1] ?? 0);

beforeAll(async () => {
  for (const n of [1, 2, 3]) backends.push(await startPythonBackend(siteFor(n)));
  lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s", "--health-path", "/", ...backends.map((b) => b.url)]);
});

afterAll(async () => {
  await lb?.kill();
  await Promise.all(backends.map((b) => b.stop()));
  rmSync(root, { recursive: true, force: true });
});

describe("walkthrough", () => {
  test("six requests rotate over the three backends in configured order", async () => {
    const order: number[] = [];
    for (let i = 0; i < 6; i++) order.push(answeredBy((await curl(`${lb.url}/`)).body));
    expect(order).toEqual([1, 2, 3, 1, 2, 3]);
  });

  test("a killed backend costs no request, is logged down once with a reason, and comes back", async () => {
    const third = backends[2]!;
    await third.stop();
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const { code, body } = await curl(`${lb.url}/`);
      expect(code).toBe(200);
      answers.push(answeredBy(body));
    }
    expect(new Set(answers)).toEqual(new Set([1, 2]));
    const downLines = () => lb.stderr.filter((l) => l.includes(`${third.port} went down`));
    expect(downLines()).toHaveLength(1);
    expect(downLines()[0]).toContain("connection refused");

    // Restart on the same port: within one interval plus a little it answers its share again.
    backends[2] = await startPythonBackend(join(root, "server3"), third.port);
    await lb.waitForLine("stderr", new RegExp(`${third.port} is back up`), 3000);
    const after: number[] = [];
    for (let i = 0; i < 6; i++) after.push(answeredBy((await curl(`${lb.url}/`)).body));
    expect(after.filter((n) => n === 3)).toHaveLength(2);
    expect(downLines()).toHaveLength(1);
  });

  test("500 URLs fetched by curl 50 at a time all succeed", async () => {
    const config = join(root, "urls.txt");
    writeFileSync(config, Array.from({ length: 500 }, (_, i) => `url = "${lb.url}/?n=${i}"\noutput = "/dev/null"\n`).join(""));
    const proc = Bun.spawn(
      ["curl", "-s", "--parallel", "--parallel-immediate", "--parallel-max", "50", "--config", config, "-w", "%{http_code}\n"],
      { stdout: "pipe", stderr: "ignore" },
    );
    const codes = (await new Response(proc.stdout).text()).trim().split("\n");
    expect(await proc.exited).toBe(0);
    expect(codes).toHaveLength(500);
    expect(codes.filter((c) => c !== "200")).toEqual([]);
    await waitFor(() => lb.stdout.filter((l) => l.includes('"/?n=')).length >= 500, "500 access lines");
  });
});
