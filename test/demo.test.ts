/** `lb demo`: three built-in backends, and failover driven from the keyboard (stdin). */
import { expect, test } from "bun:test";
import { spawnLb } from "./helpers.ts";

test("lb demo rotates over three backends and fails over when one is stopped", async () => {
  const demo = await spawnLb(["demo", "--port", "0", "--no-access-log"]);
  try {
    await demo.waitForLine("stderr", /Type 1, 2 or 3/);
    expect(demo.stderr.join("\n")).toContain(`curl ${demo.url.replace("127.0.0.1", "localhost")}/`);
    const hello = async () => (await (await fetch(`${demo.url}/`)).text()).match(/demo backend (\d)/)![1];
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
