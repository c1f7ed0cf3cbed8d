/**
 * Releases: `bun run release` (archives and SHA256SUMS in dist/release), install.sh run by a POSIX shell from those
 * very files, and the GitHub workflows that make a release. Real processes and files: tar, sha256sum and curl, which
 * Debian has (.ci/run installs curl if missing).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { TARGETS, platformOf } from "../../build.ts";
import { ROOT, runCommand } from "../helpers.ts";

const INSTALL_SH = `${ROOT}install.sh`;
// dash where there is one (Debian's /bin/sh): it runs POSIX sh and nothing more, so a bashism fails here.
const SH = Bun.which("dash") ?? "sh";
// The only target the running Bun builds without downloading a runtime.
const HOST_TARGET = `bun-${process.platform}-${process.arch}`;
const HOST_ARCHIVE = `lb-${pkg.version}-${platformOf(HOST_TARGET)}.tar.gz`;
const COMMIT = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.toString().trim();

const tempDirs: string[] = [];
function tempDir(what: string): string {
  tempDirs.push(mkdtempSync(join(tmpdir(), `lb-release-${what}-`)));
  return tempDirs.at(-1)!;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
// Released into a temporary folder: the tests leave dist/ as they found it.
const RELEASE = join(tempDir("out"), "release");
const lines = (text: string) => text.trim().split("\n").filter(Boolean);

/** install.sh run by SH from `base`, into `dir`, with `env` and `path` in front of PATH. */
function runInstaller(base: string, dir: string, env: Record<string, string> = {}, path = "") {
  return runCommand([INSTALL_SH], [SH], {
    env: { LB_INSTALL_BASE: `file://${base}`, LB_INSTALL_DIR: dir, PATH: `${path}${process.env.PATH}`, ...env },
  });
}

/** A folder to put first on PATH whose `uname` says this OS (-s) and machine (-m). */
function fakeUname(os: string, machine: string): string {
  const dir = tempDir("uname");
  writeFileSync(join(dir, "uname"), `#!/bin/sh\nif [ "$1" = -s ]; then echo ${os}; else echo ${machine}; fi\n`, { mode: 0o755 });
  return `${dir}:`;
}

let release = { code: -1, stdout: "", stderr: "" };
/** dist/release's last change before the run (null: there is none), to show the run left it alone. */
const distRelease = () => (existsSync(`${ROOT}dist/release`) ? statSync(`${ROOT}dist/release`).mtimeMs : null);
let distReleaseBefore: number | null = null;

beforeAll(async () => {
  // As offline: no cached runtimes and a proxy that refuses, so the other targets are skipped on any machine
  // (with the network, Bun would download five runtimes and the run would take a minute).
  const offline = { BUN_INSTALL_CACHE_DIR: tempDir("bun-cache"), HTTPS_PROXY: "http://127.0.0.1:9", https_proxy: "http://127.0.0.1:9" };
  distReleaseBefore = distRelease();
  release = await runCommand(["run", "release", "--out", RELEASE], ["bun"], { cwd: ROOT, env: offline });
}, 180_000);

describe("bun run release", () => {
  test("offline, it releases this machine's target and says in one line each which it skipped and why", () => {
    expect(release.code).toBe(0);
    expect(readdirSync(RELEASE).sort()).toEqual([HOST_ARCHIVE, "SHA256SUMS", "install.sh"].sort());
    const skipped = TARGETS.filter((target) => target !== HOST_TARGET);
    const reasons = lines(release.stderr).filter((line) => line.startsWith("cannot build "));
    expect(reasons.map((line) => line.split(":")[0])).toEqual(skipped.map((target) => `cannot build ${target}`));
    for (const reason of reasons) expect(reason).toMatch(/download/i);
    expect(release.stderr).toContain(`skipped ${skipped.join(", ")}`);
    expect(release.stdout).toContain(`released lb ${pkg.version} (${COMMIT}) in ${RELEASE}: ${HOST_ARCHIVE}`);
    expect(distRelease()).toBe(distReleaseBefore); // --out: the test's release goes to a temporary folder, not dist/
  });

  test("--out refuses a folder that holds anything (it would be emptied)", async () => {
    const full = tempDir("full");
    writeFileSync(join(full, "keep.txt"), "mine");
    const refused = await runCommand(["release.ts", "--out", full], ["bun"], { cwd: ROOT });
    expect({ code: refused.code, stderr: refused.stderr.trim() }).toEqual({ code: 2, stderr: `--out ${full}: give a new or empty folder` });
    expect(readdirSync(full)).toEqual(["keep.txt"]);
  });

  test("the archive holds exactly lb (executable), README.md and LICENSE, with no folder", async () => {
    const listing = await runCommand(["tzvf", `${RELEASE}/${HOST_ARCHIVE}`], ["tar"]);
    expect(listing.code).toBe(0);
    const entries = lines(listing.stdout).map((line) => line.split(/\s+/));
    expect(entries.map((fields) => fields.at(-1)).sort()).toEqual(["LICENSE", "README.md", "lb"]);
    expect(entries.find((fields) => fields.at(-1) === "lb")![0]).toBe("-rwxr-xr-x");
  });

  test("sha256sum -c SHA256SUMS passes in dist/release, over every archive", async () => {
    const check = await runCommand(["-c", "SHA256SUMS"], ["sha256sum"], { cwd: RELEASE });
    expect(check.code).toBe(0);
    expect(lines(check.stdout)).toEqual([`${HOST_ARCHIVE}: OK`]);
  });
});

describe("install.sh", () => {
  test("installs lb from the release files (file://) and prints its version", async () => {
    const dir = join(tempDir("bin"), "bin");
    const install = await runInstaller(RELEASE, dir);
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    const version = `${pkg.version} (${COMMIT})`;
    expect(install.stdout.trim()).toBe(`installed ${dir}/lb: lb ${version}`);
    const installed = await runCommand(["--version"], [`${dir}/lb`]);
    expect(installed.stdout.trim()).toBe(version);
  }, 30_000); // unpacks, checks and copies a 110 MB binary: seconds on a busy machine

  /** A refusal: non-zero exit, one line on stderr, and no lb installed. */
  async function expectRefusal(result: Promise<{ code: number; stderr: string }>, dir: string, reason: RegExp) {
    const { code, stderr } = await result;
    expect(code).not.toBe(0);
    expect(lines(stderr)).toEqual([expect.stringMatching(new RegExp(`^install\\.sh: ${reason.source}`))]);
    expect(existsSync(`${dir}/lb`)).toBe(false);
  }

  test("refuses an archive that does not match SHA256SUMS", async () => {
    const copy = tempDir("corrupt");
    cpSync(RELEASE, copy, { recursive: true });
    appendFileSync(`${copy}/${HOST_ARCHIVE}`, "x");
    const dir = tempDir("bin");
    await expectRefusal(runInstaller(copy, dir), dir, new RegExp(`checksum mismatch for ${HOST_ARCHIVE}: .*; nothing installed$`));
  });

  test("refuses an unknown operating system or architecture", async () => {
    const dir = tempDir("bin");
    await expectRefusal(runInstaller(RELEASE, dir, {}, fakeUname("SunOS", "x86_64")), dir, /unsupported operating system 'SunOS'/);
    await expectRefusal(runInstaller(RELEASE, dir, {}, fakeUname("Linux", "riscv64")), dir, /unsupported architecture 'riscv64'/);
  });

  test("refuses a version the release does not have, and a base it cannot read", async () => {
    const dir = tempDir("bin");
    await expectRefusal(runInstaller(RELEASE, dir, { LB_VERSION: "9.9.9" }), dir, /.*SHA256SUMS lists no lb-9\.9\.9-/);
    await expectRefusal(runInstaller(`${RELEASE}/nowhere`, dir), dir, /cannot download file:\/\/.*\/nowhere\/SHA256SUMS/);
  });

  test.skipIf(!Bun.which("checkbashisms"))("has no bashisms (checkbashisms, from Debian's devscripts)", async () => {
    const check = await runCommand(["--force", "--extra", INSTALL_SH], ["checkbashisms"]);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
  });
});

describe("the GitHub workflows", () => {
  const workflow = (name: string) => Bun.YAML.parse(readFileSync(`${ROOT}.github/workflows/${name}`, "utf8")) as Workflow;
  interface Step {
    run?: string;
  }
  interface Job {
    needs?: string | string[];
    uses?: string;
    steps?: Step[];
  }
  interface Workflow {
    on: Record<string, { tags?: string[] } | null>;
    jobs: Record<string, Job>;
  }
  const runs = (job: Job) => (job.steps ?? []).flatMap((step) => (step.run ? [step.run.trim()] : []));
  const needs = (job: Job) => [job.needs ?? []].flat();

  test("ci.yml runs bash .ci/run on push and pull_request (and for release.yml), and .ci/run runs bun test", () => {
    const ci = workflow("ci.yml");
    expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(["push", "pull_request", "workflow_call"]));
    expect(Object.values(ci.jobs).flatMap(runs)).toContain("bash .ci/run");
    expect(readFileSync(`${ROOT}.ci/run`, "utf8")).toMatch(/^bun test$/m);
  });

  test(".ci/run installs every tool a test is skipped without (checkbashisms, from devscripts)", () => {
    const ciRun = readFileSync(`${ROOT}.ci/run`, "utf8");
    const testFiles = readdirSync(`${ROOT}test`, { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".test.ts"));
    const skippedWithout = testFiles.flatMap((name) => [...readFileSync(`${ROOT}test/${name}`, "utf8").matchAll(/skipIf\(!Bun\.which\("([\w-]+)"\)\)/g)].map((m) => m[1]!));
    expect(skippedWithout).toContain("checkbashisms");
    for (const tool of skippedWithout) expect(ciRun).toMatch(new RegExp(`^command -v ${tool} >/dev/null 2>&1 \\|\\| \\w+\\+=\\(`, "m"));
  });

  test("release.yml, on a v* tag: CI first, then bun run release with Bun pinned like .ci/run, and the image for both architectures", () => {
    const release = workflow("release.yml");
    expect(release.on.push?.tags).toEqual(["v*"]);
    const jobNamed = (has: (job: Job) => boolean) => Object.entries(release.jobs).find(([, job]) => has(job))!;
    const [ciName] = jobNamed((job) => job.uses === "./.github/workflows/ci.yml");
    const [filesName, files] = jobNamed((job) => runs(job).some((run) => run.startsWith("bun run release")));
    const [, image] = jobNamed((job) => runs(job).some((run) => run.includes("docker buildx build")));
    expect(needs(files)).toContain(ciName);
    expect(needs(image)).toContain(filesName);
    const bunVersion = /BUN_VERSION=(\S+)/.exec(readFileSync(`${ROOT}.ci/run`, "utf8"))![1];
    expect(runs(files)).toContain(`npm install -g bun@${bunVersion}`);
    expect(runs(files).join("\n")).toContain("gh release create");
    expect(runs(image).join("\n")).toMatch(/docker buildx build --platform linux\/amd64,linux\/arm64 --file deploy\/Dockerfile .*--push/);
  });
});

describe("README.md and CHANGELOG.md", () => {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");

  test("the README gives the commands the workflows run, and installs from the address install.sh downloads from", () => {
    for (const command of ["bash .ci/run", "bun test", "bun run release"]) expect(readme).toContain(command);
    const repoUrl = /^REPO_URL=(\S+)$/m.exec(readFileSync(INSTALL_SH, "utf8"))![1]!;
    expect(readme).toContain(`curl -fsSL ${repoUrl}/releases/latest/download/install.sh | sh`);
    expect(readme).toContain(`ghcr.io/${new URL(repoUrl).pathname.split("/")[1]}/lb`);
  });

  test("CHANGELOG.md has notes for package.json's version", () => {
    expect(readFileSync(`${ROOT}CHANGELOG.md`, "utf8")).toMatch(new RegExp(`^## \\[${pkg.version}\\] - \\d{4}-\\d{2}-\\d{2}$`, "m"));
  });
});
