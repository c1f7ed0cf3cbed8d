/** Hooks files: loading and its errors, the time budget of a call, and reloading when the file changes. */
import { afterAll, describe, expect, test } from "bun:test";
import { createConsola } from "consola";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { format } from "node:util";
import { ConfigError } from "../../src/config/load.ts";
import { HookSet } from "../../src/hooks/hook-set.ts";
import { createHookContext } from "../../src/hooks/context.ts";
import { type LoadedHooks, loadHooks } from "../../src/hooks/load.ts";
import { runHook } from "../../src/hooks/run.ts";
import { ROOT, runCommand, waitFor } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-hooks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Which version of a test hooks file runs: each sets ctx.pool to its own name. */
function versionFile(n: number): string {
  return `export function onRequest(ctx: { pool: string | null }) { ctx.pool = "v${n}"; }\n`;
}

function versionOf(hooks: LoadedHooks): string | null {
  const ctx = createHookContext(new Request("http://lb.test/"), { requestId: "r1", clientIp: "127.0.0.1", pool: null, path: "/" });
  hooks.onRequest!(ctx);
  return ctx.pool;
}

let files = 0;
/** A new hooks file with this source, in its own name so no test sees another's. */
function hooksFile(source: string): string {
  const path = join(dir, `hooks-${++files}.ts`);
  writeFileSync(path, source);
  return path;
}

async function loadProblem(path: string): Promise<string> {
  const error = await loadHooks(path).then(
    () => new Error("loaded"),
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as Error).message;
  expect(message.split("\n")).toHaveLength(1);
  expect(message).toStartWith(`hooks: ${path}: `);
  return message.slice(`hooks: ${path}: `.length);
}

describe("loadHooks", () => {
  test("loads a file's hooks; its relative imports (values and types) work", async () => {
    writeFileSync(join(dir, "greeting.ts"), 'export const greeting = "hello";\n');
    const path = hooksFile(
      `import { greeting } from "./greeting";\nimport type { HookContext } from "${ROOT}src/hooks/lb-hooks";\n` +
        "export function onRequest(ctx: HookContext) { ctx.path = `/${greeting}`; }\n" +
        "export async function onResponse() {}\n",
    );
    const hooks = await loadHooks(path);
    expect(hooks.path).toBe(path);
    const ctx = { path: "/" };
    hooks.onRequest!(ctx as never);
    expect(ctx.path).toBe("/hello");
    expect(hooks.onResponse).toBeFunction();
  });

  test("each load imports the file anew", async () => {
    const path = hooksFile(versionFile(1));
    expect(versionOf(await loadHooks(path))).toBe("v1");
    writeFileSync(path, versionFile(2));
    expect(versionOf(await loadHooks(path))).toBe("v2");
  });

  test.each([
    ["a syntax error, with its place", "export function onRequest( {\n", /^line 1:\d+: Expected/],
    ["an error thrown at import", 'throw new TypeError("no config");\nexport function onRequest() {}\n', "threw while loading: TypeError: no config"],
    ["an export that is not a hook", "export function onrequest() {}\n", 'exports "onrequest", which is not a hook; did you mean onRequest? (a hooks file exports onRequest and/or onResponse only)'],
    ["a default export", "export default { onRequest() {} };\n", 'exports "default", which is not a hook'],
    ["a hook that is not a function", "export const onResponse = 5;\n", "onResponse is number, not a function"],
    ["no hook at all", "export {};\n", "exports no hook; export function onRequest(ctx) and/or onResponse(ctx, response)"],
  ])("refuses %s", async (_what, source, expected) => {
    const problem = await loadProblem(hooksFile(source));
    if (typeof expected === "string") expect(problem).toStartWith(expected);
    else expect(problem).toMatch(expected);
  });

  test("a broken module it imports is named with its place; an import that does not resolve, with the import's", async () => {
    writeFileSync(join(dir, "broken-dep.ts"), 'export const a = 1;\nexport const b = (;\n');
    const broken = await loadProblem(hooksFile('import { b } from "./broken-dep.ts";\nexport function onRequest() { return b; }\n'));
    expect(broken).toMatch(/^broken-dep\.ts line 2:\d+: /);
    const missing = await loadProblem(hooksFile('import { c } from "./nowhere.ts";\nexport function onRequest() { return c; }\n'));
    expect(missing).toBe('line 1:19: Could not resolve: "./nowhere.ts"');
  });

  test("refuses a missing file", async () => {
    expect(await loadProblem(join(dir, "missing.ts"))).toBe("no such file");
  });
});

describe("runHook", () => {
  test("a synchronous hook's outcome comes back at once, not as a promise", () => {
    expect(runHook(() => 42, 1000)).toEqual({ ok: true, value: 42 });
    expect(runHook(() => undefined, 1000)).toEqual({ ok: true, value: undefined });
  });

  test("a hook that throws, at once or later", async () => {
    const throwing = () => {
      throw new RangeError("bad header");
    };
    expect(runHook(throwing, 1000)).toEqual({ ok: false, reason: "threw", message: "RangeError: bad header" });
    expect(await runHook(async () => throwing(), 1000)).toEqual({ ok: false, reason: "threw", message: "RangeError: bad header" });
    expect(await runHook(() => Promise.reject("a string"), 1000)).toEqual({ ok: false, reason: "threw", message: "a string" });
  });

  test("an async hook within its budget gives its value", async () => {
    const response = new Response("hi");
    expect(await runHook(async () => response, 1000)).toEqual({ ok: true, value: response });
  });

  test("an async hook past its budget times out then, and its late rejection is swallowed", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      let rejectLate!: (error: Error) => void;
      const started = performance.now();
      const outcome = await runHook(() => new Promise((_resolve, reject) => (rejectLate = reject)), 50);
      const elapsed = performance.now() - started;
      expect(outcome).toEqual({ ok: false, reason: "timed out", message: "took longer than 50ms" });
      expect(elapsed).toBeGreaterThanOrEqual(45);
      expect(elapsed).toBeLessThan(1000);
      rejectLate(new Error("too late"));
      // An unhandled rejection is reported once the microtasks run out: one macrotask later is past that.
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe("HookSet reloads the file when it changes", () => {
  const logs: string[] = [];
  const log = createConsola({ level: 4, throttle: 0, reporters: [{ log: (entry) => logs.push(`${entry.type}: ${format(...entry.args)}`) }] });

  test("a new version replaces the hooks; a broken one is logged and the last good ones stay; a rename over it counts", async () => {
    const path = hooksFile(versionFile(1));
    const hooks = new HookSet(await loadHooks(path), log, 20);
    const current = () => versionOf(hooks.current);
    try {
      writeFileSync(path, versionFile(2));
      await waitFor(() => current() === "v2", "version 2");
      expect(logs).toContain(`info: hooks: reloaded ${path}`);

      writeFileSync(path, "export function onRequest( {\n");
      await waitFor(() => logs.find((line) => line.startsWith("error: ")), "the error line");
      expect(logs.find((line) => line.startsWith("error: "))).toMatch(new RegExp(`^error: hooks: ${path}: line 1:\\d+: .*; the last good hooks stay$`));
      expect(current()).toBe("v2");

      // Editors that save by writing another file and renaming it over this one.
      const saved = `${path}.swp`;
      writeFileSync(saved, versionFile(3));
      renameSync(saved, path);
      await waitFor(() => current() === "v3", "version 3, renamed into place");
    } finally {
      hooks.stop();
    }
  });

  test("a change to a module it imports (here in a subdirectory) reloads the hooks; other files change nothing", async () => {
    const sub = mkdtempSync(join(dir, "imports-"));
    mkdirSync(join(sub, "lib"));
    const setting = (n: number) => writeFileSync(join(sub, "lib", "pool.ts"), `export const pool = "v${n}";\n`);
    setting(1);
    const path = join(sub, "lb.hooks.ts");
    writeFileSync(path, 'import { pool } from "./lib/pool.ts";\nexport function onRequest(ctx: { pool: string | null }) { ctx.pool = pool; }\n');
    const before = logs.length;
    const lines = (prefix: string) => logs.slice(before).filter((line) => line.startsWith(prefix));
    let looked = 0;
    // A change that should do nothing: once the set has dealt with it, nothing was logged.
    const quietWhile = async (change: () => void) => {
      const [seen, lookedBefore] = [logs.length, looked];
      change();
      await waitFor(() => looked > lookedBefore, "the change to be looked at");
      expect(logs.slice(seen)).toEqual([]);
    };
    const hooks = new HookSet(await loadHooks(path), log, 20, () => looked++);
    try {
      setting(2);
      await waitFor(() => versionOf(hooks.current) === "v2", "the hooks with the imported module's new value");
      await quietWhile(() => writeFileSync(join(sub, "notes.txt"), "x")); // not a file the hooks are built from
      writeFileSync(join(sub, "lib", "pool.ts"), 'export const pool = "v3"; (\n');
      await waitFor(() => lines("error: ").length, "the broken import's error");
      expect(lines("error: ")[0]).toMatch(new RegExp(`^error: hooks: ${path}: lib/pool\\.ts line 1:\\d+: .*; the last good hooks stay$`));
      // The same broken file saved again: built again, the same problem, not logged twice.
      await quietWhile(() => writeFileSync(join(sub, "lib", "pool.ts"), 'export const pool = "v3"; (\n'));
      setting(4);
      await waitFor(() => versionOf(hooks.current) === "v4", "version 4");
      expect(lines("info: hooks: reloaded")).toHaveLength(2);
      expect(lines("error: ")).toHaveLength(1);
    } finally {
      hooks.stop();
    }
  });

  test("a new import from a new directory, broken at first, is followed once fixed; so is a directory made anew", async () => {
    const sub = mkdtempSync(join(dir, "new-import-"));
    const path = join(sub, "lb.hooks.ts");
    writeFileSync(path, versionFile(1));
    const hooks = new HookSet(await loadHooks(path), log, 20);
    try {
      mkdirSync(join(sub, "lib2"));
      writeFileSync(join(sub, "lib2", "pool.ts"), "export const pool = (;\n");
      writeFileSync(path, 'import { pool } from "./lib2/pool.ts";\nexport function onRequest(ctx: { pool: string | null }) { ctx.pool = pool; }\n');
      await waitFor(() => logs.some((line) => line.includes("lib2/pool.ts line 1:")), "the new import's error");
      writeFileSync(join(sub, "lib2", "pool.ts"), 'export const pool = "v2";\n');
      await waitFor(() => versionOf(hooks.current) === "v2", "the fixed import");
      // The directory removed and made again (a copy, a checkout): its new files are watched.
      rmSync(join(sub, "lib2"), { recursive: true });
      mkdirSync(join(sub, "lib2"));
      writeFileSync(join(sub, "lib2", "pool.ts"), 'export const pool = "v3";\n');
      await waitFor(() => versionOf(hooks.current) === "v3", "the import in the new directory");
      writeFileSync(join(sub, "lib2", "pool.ts"), 'export const pool = "v4";\n');
      await waitFor(() => versionOf(hooks.current) === "v4", "a later change in the new directory");
    } finally {
      hooks.stop();
    }
  });

  test("a Kubernetes ConfigMap update (a ..data symlink swapped, the file's own name untouched) is loaded", async () => {
    const mount = mkdtempSync(join(dir, "configmap-"));
    const publish = (version: number) => {
      const data = join(mount, `..2026_${version}`);
      mkdirSync(data);
      writeFileSync(join(data, "lb.hooks.ts"), versionFile(version));
      symlinkSync(`..2026_${version}`, join(mount, "..data_tmp"));
      renameSync(join(mount, "..data_tmp"), join(mount, "..data")); // atomic, as the kubelet does it
    };
    publish(1);
    symlinkSync("..data/lb.hooks.ts", join(mount, "lb.hooks.ts"));
    const hooks = new HookSet(await loadHooks(join(mount, "lb.hooks.ts")), log, 20);
    try {
      publish(2);
      await waitFor(() => versionOf(hooks.current) === "v2", "the new version behind the swapped symlink");
    } finally {
      hooks.stop();
    }
  });

  test("after stop, changes are not loaded", async () => {
    const path = hooksFile(versionFile(1));
    const hooks = new HookSet(await loadHooks(path), log, 1);
    hooks.stop();
    writeFileSync(path, versionFile(2));
    const probe = hooksFile(versionFile(7));
    // A second, running set on another file shows when a reload would have happened.
    const watching = new HookSet(await loadHooks(probe), log, 1);
    try {
      writeFileSync(probe, versionFile(8));
      await waitFor(() => versionOf(watching.current) === "v8", "the running set's reload");
      expect(versionOf(hooks.current)).toBe("v1");
    } finally {
      watching.stop();
    }
  });
});

describe("the hooks settings", () => {
  test("a missing hooks file stops lb at startup: exit 2, one line", async () => {
    const missing = join(dir, "missing.hooks.ts");
    const { code, stderr } = await runCommand(["--hooks", missing, "http://a:1"]);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(`lb: command line: hooks: ${missing}: no such file`);
  });

  test("lb validate loads the hooks file: a broken one is exit 2 with its error", async () => {
    const config = join(dir, "lb.toml");
    const broken = hooksFile("export function onrequest() {}\n");
    writeFileSync(config, `backends = ["http://a:1"]\nhooks = "${broken}"\nhooks-timeout = "200ms"\n`);
    const failed = await runCommand(["validate", "--config", config]);
    expect(failed.code).toBe(2);
    expect(failed.stderr.trim()).toBe(`hooks: ${broken}: exports "onrequest", which is not a hook; did you mean onRequest? (a hooks file exports onRequest and/or onResponse only)`);
    // A good one; the pool it names must be one of the config's (lb validate checks that too).
    const good = hooksFile('export function onRequest(ctx: { pool: string | null }) { ctx.pool = "default"; }\n');
    writeFileSync(config, `backends = ["http://a:1"]\nhooks = "${good}"\n`);
    expect(await runCommand(["validate", "--config", config])).toMatchObject({ code: 0, stderr: "" });
  });
});
