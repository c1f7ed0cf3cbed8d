/** The command line as a user meets it: real processes, exit codes and the one line printed on bad input. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { SETTINGS } from "../../src/config/settings.ts";
import { runCommand, spawnLb, startBackend } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("lb --version and --help", () => {
  test("--version prints the version", async () => {
    const { code, stdout } = await runCommand(["--version"]);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(`${pkg.version} (source)`);
  });

  test("--help lists every option in its group with its default, the commands, within 100 columns, no escapes when piped", async () => {
    const { code, stdout } = await runCommand(["--help"]);
    expect(code).toBe(0);
    for (const setting of SETTINGS) expect(stdout).toContain(`--${setting.type === "boolean" && setting.fallback === true ? "[no-]" : ""}${setting.name}`);
    for (const shown of ["(default 8000)", "(default 0.0.0.0)", "(default 10s)", "(default 2s)", "(default 1m)", "(default info)"]) {
      expect(stdout).toContain(shown);
    }
    for (const heading of ["LISTENING", "BACKENDS AND FORWARDING", "HEALTH CHECKS AND EJECTION", "BALANCING", "LIMITS", "TLS", "ADMIN API", "LOGGING", "COMMANDS"]) {
      expect(stdout).toContain(`\n${heading}\n`);
    }
    for (const command of ["demo", "backends", "status", "validate", "version", "schema", "types"]) expect(stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    expect(stdout).toContain("--config");
    expect(stdout).toMatch(/^  --check\s+Check the config \(file and flags\) and start nothing/m);
    const flowing = stdout.replace(/\s+/g, " ");
    expect(flowing).toContain("--policy <round-robin|least-connections|random|p2c|ewma|hash> How a backend is chosen for each request (docs/balancing.md says when to use which)");
    expect(flowing).not.toContain("README");
    expect(Math.max(...stdout.split("\n").map((line) => line.length))).toBeLessThanOrEqual(100);
    expect(stdout).not.toContain("\x1b[");
    expect(stdout).not.toContain("Default: 0ms"); // --health-down-interval's default is the interval, said in its text
    expect(stdout).not.toContain('""status');
  });

  test("the option table in docs/usage.md names every option", async () => {
    const readme = await Bun.file(new URL("../../docs/usage.md", import.meta.url)).text();
    for (const setting of SETTINGS) expect(readme).toMatch(new RegExp(`\\| \`(-\\w, )?--${setting.name}\``));
  });

  test("lb demo --help describes the demo", async () => {
    const { code, stdout } = await runCommand(["demo", "--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("three built-in backends");
    expect(stdout).not.toContain("--backends");
    expect(stdout).not.toContain("--check");
  });
});

describe("bad input exits 2 with one line that says what to do", () => {
  const taken = startBackend("taken");
  afterAll(() => taken.stop());
  const badConfig = join(dir, "bad.toml");
  writeFileSync(badConfig, 'port = "high"\nbackends = ["http://localhost:1"]\n');

  test.each([
    [["nope://x"], 'backends[0]: "nope://x" uses nope; backends must be http://, https:// or tcp://'],
    [["http://a:1/path"], "has a path or query"],
    [["--prot", "80", "http://a:1"], "unknown option --prot; run lb --help to see the options"],
    [["-x", "http://a:1"], "unknown option -x"],
    [["--health-interval", "soon", "http://a:1"], 'health-interval: "soon" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds'],
    [["--port", "99999", "http://a:1"], 'port: "99999" is not a port'],
    [["--log-level", "loud", "http://a:1"], "is not one of error, warn, info, debug"],
    [["--config", join(dir, "missing.toml")], "cannot read the config file (no such file); check the --config path"],
    [["--config", badConfig], 'bad.toml:1: port: "high" is not a port'],
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

describe("commands", () => {
  test("lb version and lb version --json; lb help", async () => {
    const plain = await runCommand(["version"]);
    expect(plain.stdout.trim()).toBe(`${pkg.version} (source)`);
    const json = JSON.parse((await runCommand(["version", "--json"])).stdout);
    expect(json).toEqual({ version: pkg.version, commit: "source", bun: Bun.version, target: `${process.platform}-${process.arch}` });
    const help = await runCommand(["help", "validate"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("lb validate --config <file>");
  });

  test.each([
    [["stauts"], 'unknown command "stauts"; did you mean "status"?'],
    [["versoin"], 'unknown command "versoin"; did you mean "version"?'],
    [["valdiate", "--config", "x.toml"], 'unknown command "valdiate"; did you mean "validate"?'],
    [["frobnicate"], '"frobnicate" is neither a command nor a backend; write backends as http://host:port or host:port'],
    [["--port", "8000", "status"], '"status" is a command: put it first (lb status …)'],
    [["backends", "list", "--jsno"], "unknown option --jsno; run lb backends --help"],
    [["status", "--wtach"], "unknown option --wtach; run lb status --help"],
    [["version", "--verbose"], "unknown option --verbose; run lb version --help"],
    [["--config", "/nonexistent/dir/lb.toml"], "/nonexistent/dir/lb.toml: cannot read the config file (no such file); check the --config path"],
    [["validate"], "lb validate needs a config file: lb validate lb.toml (or --config lb.toml)"],
    [["help", "stauts"], 'no command "stauts"; did you mean "status"?'],
    [["constructor"], '"constructor" is neither a command nor a backend'],
  ])("lb %p exits 2 with one line", async (args, message) => {
    const { code, stdout, stderr } = await runCommand(args);
    expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
    expect(stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(stderr).toContain(message);
  });

  test("a backend written host:port is taken as http://host:port", async () => {
    const backend = startBackend("bare");
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", `127.0.0.1:${backend.port}`]);
    try {
      expect(await (await fetch(`${lb.url}/`)).text()).toBe("backend bare");
    } finally {
      await lb.kill();
      await backend.stop();
    }
  });

  test("each subcommand's --help fits 100 columns", async () => {
    for (const command of ["demo", "backends", "status", "validate", "version", "schema", "types"]) {
      const { code, stdout } = await runCommand([command, "--help"]);
      expect(code).toBe(0);
      expect(Math.max(...stdout.split("\n").map((line) => line.length))).toBeLessThanOrEqual(100);
    }
  });
});

/** docs/routing.md's example of a file with three problems: the file, and what `lb validate lb.toml` prints. */
async function routingDocsExample(): Promise<{ file: string; printed: string[] }> {
  const markdown = await Bun.file(join(import.meta.dir, "../../docs/routing.md")).text();
  const [, file, printed] = /```toml\n([^`]*)```\s*`lb validate lb\.toml` prints[^`]*```\n([^`]*)```/.exec(markdown)!;
  return { file: file!, printed: printed!.trimEnd().split("\n") };
}

describe("lb validate", () => {
  test("a good file: exit 0 and a one-line summary; flags beside it are checked with it", async () => {
    const file = join(dir, "good.toml");
    writeFileSync(file, 'port = 8080\nbackends = ["http://10.0.0.1:8080", "10.0.0.2:8080"]\npolicy = "least-connections"\n');
    const ok = await runCommand(["validate", "--config", file]);
    expect(ok).toEqual({ code: 0, stdout: `${file}: OK (2 backends, policy least-connections, port 8080)\n`, stderr: "" });
    const check = await runCommand(["--config", file, "--check", "--port", "9000"]);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain("port 9000");
    const badFlag = await runCommand(["validate", "--config", file, "--retries", "many"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('command line: retries: "many"');
  });

  test("a bad file: exit 2, every problem on its own line with file and line", async () => {
    const file = join(dir, "broken.yaml");
    writeFileSync(file, "backends:\n  - http://a:1\n  - ftp://b:2\nprot: 80\nhealth_interval: 2s\npolicy: fastest\n");
    const { code, stdout, stderr } = await runCommand(["validate", "--config", file]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr.trimEnd().split("\n")).toEqual([
      `${file}:4: "prot" is not a setting; did you mean port?`,
      `${file}:5: "health_interval" is not a setting; settings use dashes: write health-interval`,
      `${file}:1: backends[1]: "ftp://b:2" uses ftp; backends must be http://, https:// or tcp://`,
      `${file}:6: policy: "fastest" is not one of round-robin, least-connections, random, p2c, ewma, hash`,
    ]);
  });

  test("a file that does not parse: exit 2 with the parser's reason and the line", async () => {
    const file = join(dir, "unparsable.toml");
    writeFileSync(file, 'port = 8000\nhost = "0.0.0.0\nbackends = ["http://10.0.0.1:8080"]\n');
    const { code, stderr } = await runCommand(["validate", "--config", file]);
    expect({ code, stderr }).toEqual({ code: 2, stderr: `${file}:2: not valid TOML: Unterminated string; newlines must be escaped in basic strings\n` });
  });

  test("lb validate FILE: the file as an argument; backends may follow it, as on lb's command line", async () => {
    const file = join(dir, "positional.toml");
    writeFileSync(file, 'port = 8080\nbackends = ["http://10.0.0.1:8080"]\n');
    expect(await runCommand(["validate", file])).toEqual({ code: 0, stdout: `${file}: OK (1 backend, policy round-robin, port 8080)\n`, stderr: "" });
    const withBackends = await runCommand(["validate", file, "http://10.0.0.2:8080", "http://10.0.0.3:8080"]);
    expect(withBackends.stdout).toBe(`${file}: OK (2 backends, policy round-robin, port 8080)\n`);
  });

  test("docs/routing.md's three-error example: all three, each at its line, and nothing that follows from them", async () => {
    const file = join(dir, "routing.toml");
    const example = await routingDocsExample();
    writeFileSync(file, example.file);
    const { code, stdout, stderr } = await runCommand(["validate", file]);
    expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
    expect(example.printed).toHaveLength(3);
    expect(stderr.trimEnd().split("\n")).toEqual(example.printed.map((line) => line.replace(/^lb\.toml:/, `${file}:`)));
  });

  test("a hooks file that sets a pool the config does not have: refused at the line that sets it", async () => {
    const hooks = join(dir, "hooks.ts");
    writeFileSync(
      hooks,
      [
        "/** Example: ctx.pool = \"in-a-comment\"; */",
        "export function onRequest(ctx) {",
        '  if (ctx.pool === "api") return; // ctx.pool = "commented"',
        '  if (ctx.request.headers.get("x-canary") === "1") ctx.pool = "canry";',
        "  else ctx.pool = 'api';",
        "}",
        "",
      ].join("\n"),
    );
    const file = join(dir, "hooks.toml");
    writeFileSync(file, `hooks = "${hooks}"\n[pools.api]\nbackends = ["http://10.0.0.1:8080"]\n[pools.canary]\nbackends = ["http://10.0.0.2:8080"]\n[[routes]]\npool = "api"\n`);
    expect(await runCommand(["validate", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: `${hooks}:4: hooks: ctx.pool = "canry" names no pool; the pools are api, canary\n`,
    });
  });
});

describe("lb completion", () => {
  test("bash: commands, each command's options and words, from the same definitions as --help", async () => {
    const { code, stdout } = await runCommand(["completion", "bash"]);
    expect(code).toBe(0);
    const script = join(dir, "lb.bash");
    writeFileSync(script, stdout);
    const complete = async (...words: string[]) => {
      const line = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _lb; echo "\${COMPREPLY[@]}"`;
      const proc = Bun.spawn(["bash", "-c", line], { stdout: "pipe" });
      return (await new Response(proc.stdout).text()).trim().split(" ");
    };
    expect(await complete("lb", "sta")).toEqual(["status"]);
    expect(await complete("lb", "--health-i")).toEqual(["--health-interval"]);
    expect(await complete("lb", "backends", "d")).toEqual(["drain", "disable"]);
    expect(await complete("lb", "status", "--w")).toEqual(["--watch"]);
    expect(await complete("lb", "demo", "--backe")).toEqual(["--backend-ca", "--backend-insecure"]);
    // After a flag that takes a value: its values, never the flags.
    expect(await complete("lb", "--policy", "")).toEqual(["round-robin", "least-connections", "random", "p2c", "ewma", "hash"]);
    expect(await complete("lb", "--policy", "le")).toEqual(["least-connections"]);
    expect(await complete("lb", "demo", "--log-format", "")).toEqual(["pretty", "json"]);
    expect(await complete("lb", "-p", "")).toEqual([""]); // a port: nothing to offer (the shell falls back to file names)
    expect(await complete("lb", "backends", "--pool", "")).toEqual([""]);
    expect(await complete("lb", "--policy", "ewma", "--health-i")).toEqual(["--health-interval"]);
  });

  test("zsh and fish scripts; an unknown shell exits 2", async () => {
    expect((await runCommand(["completion", "zsh"])).stdout).toStartWith("autoload -U +X bashcompinit && bashcompinit\n");
    const fish = (await runCommand(["completion", "fish"])).stdout;
    expect(fish).toContain('complete -c lb -f -n __fish_use_subcommand -a "demo backends status reload certs validate version completion schema types"');
    expect(fish).toContain('complete -c lb -n "__fish_seen_subcommand_from status" -l watch');
    expect(fish).toContain('complete -c lb -n "__fish_use_subcommand" -l policy -x -a "round-robin least-connections random p2c ewma hash"');
    expect(fish).toContain('complete -c lb -n "__fish_seen_subcommand_from status" -l admin -r');
    const bad = await runCommand(["completion", "tcsh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("lb completion needs one of bash, zsh, fish");
  });
});
