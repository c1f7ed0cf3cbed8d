/** The compiled dist/lb: built here, run as its own process, in front of real backends. */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { ROOT, runCommand, spawnLb, startBackend } from "../helpers.ts";

const binary = `${ROOT}dist/lb`;

beforeAll(async () => {
  // Always built from the current source (about a second), so a stale dist/lb never passes or fails for old code.
  const build = Bun.spawn(["bun", `${ROOT}build.ts`], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
  expect(await build.exited).toBe(0);
}, 60_000);

test("dist/lb --version names the version and the commit it was built from", async () => {
  const { code, stdout } = await runCommand(["--version"], [binary]);
  expect(code).toBe(0);
  const commit = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.toString().trim();
  expect(stdout.trim()).toBe(`${pkg.version} (${commit})`);
});

test("dist/lb balances, fails over and shuts down cleanly", async () => {
  const a = startBackend("a");
  const b = startBackend("b");
  const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--health-interval", "1s", a.url, b.url], [binary]);
  try {
    const texts = [];
    for (let i = 0; i < 4; i++) texts.push(await (await fetch(`${lb.url}/`)).text());
    expect(texts).toEqual(["backend a", "backend b", "backend a", "backend b"]);
    await b.stop();
    for (let i = 0; i < 4; i++) expect(await (await fetch(`${lb.url}/`)).text()).toBe("backend a");
  } finally {
    expect(await lb.kill()).toBe(0);
    await a.stop();
  }
});

test("dist/lb rejects bad input with exit 2", async () => {
  const { code, stderr } = await runCommand(["--timeout", "forever", "http://a:1"], [binary]);
  expect(code).toBe(2);
  expect(stderr.trim()).toBe('lb: command line: timeout: "forever" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds');
});

test("dist/lb prints the hook types, and imports a TypeScript hooks file (with its relative imports) at runtime", async () => {
  const types = await runCommand(["types"], [binary]);
  expect(types.code).toBe(0);
  expect(types.stdout).toBe(await Bun.file(`${ROOT}src/hooks/lb-hooks.d.ts`).text());
  const dir = mkdtempSync(join(tmpdir(), "lb-binary-hooks-"));
  try {
    const config = join(dir, "lb.toml");
    writeFileSync(config, `backends = ["http://a:1"]\nhooks = "${join(dir, "lb.hooks.ts")}"\n`);
    writeFileSync(join(dir, "lb-hooks.d.ts"), types.stdout);
    writeFileSync(join(dir, "pools.ts"), 'export const CANARY = "canary";\n');
    const hooks = 'import type { HookContext } from "./lb-hooks";\nimport { CANARY } from "./pools";\nexport function onRequest(ctx: HookContext) { ctx.pool = CANARY; }\n';
    writeFileSync(join(dir, "lb.hooks.ts"), hooks);
    expect(await runCommand(["validate", "--config", config], [binary])).toMatchObject({ code: 0, stderr: "" });
    writeFileSync(join(dir, "lb.hooks.ts"), hooks.replace("onRequest", "onrequest"));
    const broken = await runCommand(["validate", "--config", config], [binary]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('exports "onrequest", which is not a hook; did you mean onRequest?');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.ts knows the other targets: linux arm64 builds here (or says clearly why it cannot)", async () => {
  const started = Date.now();
  const unknown = await runCommand(["--target", "bun-amiga"], ["bun", `${ROOT}build.ts`]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain("unknown target bun-amiga; known: bun-linux-x64, bun-linux-arm64");
  // Into a temporary folder: a test leaves no 112 MB binary in dist/.
  const dir = mkdtempSync(join(tmpdir(), "lb-arm64-"));
  const out = join(dir, "lb-linux-arm64");
  try {
    const arm = await runCommand(["--target", "bun-linux-arm64", "--out", out], ["bun", `${ROOT}build.ts`], { cwd: ROOT });
    expect(existsSync(`${ROOT}dist/lb-linux-arm64`) && statSync(`${ROOT}dist/lb-linux-arm64`).mtimeMs > started).toBe(false);
    if (arm.code !== 0) {
      // Offline, Bun cannot fetch that runtime: the failure must say so in one line.
      expect(arm.stderr).toContain("cannot build bun-linux-arm64");
      return;
    }
    const header = new Uint8Array(await Bun.file(out).slice(0, 20).arrayBuffer());
    expect([...header.slice(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]); // ELF
    expect(header[18]).toBe(0xb7); // e_machine: AArch64
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
