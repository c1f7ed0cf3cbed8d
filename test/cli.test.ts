/** The command line as a user meets it: real processes, exit codes and the one line printed on bad input. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { SETTINGS } from "../src/config/settings.ts";
import { runCommand, spawnLb, startBackend } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("lb --version and --help", () => {
  test("--version prints the version", async () => {
    const { code, stdout } = await runCommand(["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`${pkg.version} (source)`);
  });

  test("--help lists every option with an example, and the defaults", async () => {
    const { code, stdout } = await runCommand(["--help"]);
    expect(code).toBe(0);
    for (const setting of SETTINGS) {
      expect(stdout).toContain(`--${setting.name}`);
      expect(stdout).toContain(setting.example);
    }
    for (const shown of ["(Default: 8000)", "(Default: 0.0.0.0)", "(Default: 10s)", "(Default: 2s)", "(Default: 1m)", "(Default: info)"]) {
      expect(stdout).toContain(shown);
    }
    expect(stdout).toContain("--config");
    expect(stdout).toContain("lb demo");
  });

  test("the README's option table names every option", async () => {
    const readme = await Bun.file(new URL("../README.md", import.meta.url)).text();
    for (const setting of SETTINGS) expect(readme).toMatch(new RegExp(`\\| \`(-\\w, )?--${setting.name}\``));
  });

  test("lb demo --help describes the demo", async () => {
    const { code, stdout } = await runCommand(["demo", "--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("three built-in backends");
    expect(stdout).not.toContain("--backends");
  });
});

describe("bad input exits 2 with one line that says what to do", () => {
  const taken = startBackend("taken");
  afterAll(() => taken.stop());
  const badConfig = join(dir, "bad.toml");
  writeFileSync(badConfig, 'port = "high"\nbackends = ["http://localhost:1"]\n');

  test.each([
    [["nope://x"], 'backends[0]: "nope://x" uses nope; backends must be http:// or https://'],
    [["http://a:1/path"], "has a path or query"],
    [["--prot", "80", "http://a:1"], "unknown option --prot; run lb --help to see the options"],
    [["-x", "http://a:1"], "unknown option -x"],
    [["--health-interval", "soon", "http://a:1"], 'health-interval: "soon" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds'],
    [["--port", "99999", "http://a:1"], 'port: "99999" is not a port'],
    [["--log-level", "loud", "http://a:1"], "is not one of error, warn, info, debug"],
    [["--config", join(dir, "missing.toml")], "cannot read the config file (no such file); check the --config path"],
    [["--config", badConfig], 'bad.toml: port: "high" is not a port'],
    [[], "no backends: give their URLs"],
  ])("lb %p", async (args, message) => {
    const { code, stdout, stderr } = await runCommand(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(stderr).toStartWith("lb: ");
    expect(stderr).toContain(message);
  });

  test("a port in use", async () => {
    const { code, stderr } = await runCommand(["--port", String(taken.port), "--host", "127.0.0.1", taken.url]);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(`lb: port ${taken.port} is already in use on 127.0.0.1; stop what uses it or choose another with --port`);
  });
});

describe("settings from a config file, flags override", () => {
  test("the file's backends and health path are used; --log-level from the command line wins", async () => {
    const backend = startBackend("from-file");
    const file = join(dir, "lb.yaml");
    writeFileSync(file, `port: 1\nhost: 127.0.0.1\nlog-level: warn\nhealth-path: /ready\nbackends:\n  - ${backend.url}\n`);
    const lb = await spawnLb(["--config", file, "--port", "0", "--log-level", "info"]);
    try {
      expect(await (await fetch(`${lb.url}/`)).text()).toBe("backend from-file");
      expect(backend.seen.some((r) => r.path === "/ready")).toBe(true);
    } finally {
      expect(await lb.kill()).toBe(0);
      await backend.stop();
    }
  });
});
