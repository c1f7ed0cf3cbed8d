/** `lb demo`: three built-in backends, and failover driven from the keyboard (stdin). */
import { expect, test } from "bun:test";
import { ROOT, collectLines, spawnLb, waitFor } from "../helpers.ts";

test("lb demo rotates over three backends and fails over when one is stopped", async () => {
  const demo = await spawnLb(["demo", "--port", "0", "--no-access-log"]);
  try {
    await demo.waitForLine("stderr", /Type 1, 2 or 3/);
    expect(demo.stderr.join("\n")).toContain(`curl ${demo.url.replace("127.0.0.1", "localhost")}/`);
    const hello = async () => (await (await fetch(`${demo.url}/`)).text()).match(/demo backend (\d)/)![1];
    // Each says the port it really listens on (it asked for any free one).
    const ports = new Set([1, 2, 3].map(() => 0));
    for (let i = 0; i < 3; i++) ports.add(Number(/\(port (\d+)\)/.exec(await (await fetch(`${demo.url}/`)).text())![1]));
    ports.delete(0);
    expect(ports.size).toBe(3);
    const firstRound = [await hello(), await hello(), await hello()];
    expect(firstRound.sort()).toEqual(["1", "2", "3"]);

    demo.proc.stdin.write("2\n");
    await demo.waitForLine("stderr", /demo backend 2 \(port \d+\) stopped/);
    const during = await Promise.all(Array.from({ length: 9 }, hello));
    expect(new Set(during)).toEqual(new Set(["1", "3"]));

    demo.proc.stdin.write("2\n");
    await demo.waitForLine("stderr", /demo backend 2 \(port \d+\) started/);
    await demo.waitForLine("stderr", /is back up/, 5000);
    const after = await Promise.all(Array.from({ length: 6 }, hello));
    expect(after).toContain("2");
  } finally {
    expect(await demo.kill("SIGINT")).toBe(0);
  }
});

test("lb demo starts even when the usual ports (8000, 7019) are taken, and says where it went", async () => {
  const taken = [8000, 7019].flatMap((port) => {
    try {
      return [Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } })];
    } catch {
      return []; // already taken by something else: just as good for this test
    }
  });
  // Not spawnLb: it would choose an admin port itself, and the point is what the demo does without one. An
  // LB_BACKENDS left in the environment must not replace the demo's own backends either.
  const env = { ...process.env, LB_BACKENDS: "http://127.0.0.1:1" };
  const demo = Bun.spawn(["bun", `${ROOT}src/main.ts`, "demo", "--no-access-log"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env });
  const stderr = collectLines(demo.stderr);
  try {
    const line = await waitFor(() => stderr.find((l) => /the dashboard: http:\/\/localhost:\d+\//.test(l)), () => stderr.join("\n"), 8000);
    expect(line).not.toContain(":7019/");
    const url = /behind lb at (http:\/\/localhost:\d+)/.exec(stderr.join("\n"))![1]!;
    expect(url).not.toEndWith(":8000");
    expect((await fetch(`${url.replace("localhost", "127.0.0.1")}/`)).status).toBe(200);
    expect(stderr.join("\n")).toMatch(/lb listening on \S+ → 3 backends/);
  } finally {
    demo.kill("SIGINT");
    await demo.exited;
    for (const listener of taken) listener.stop(true);
  }
});
