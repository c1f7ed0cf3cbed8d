/**
 * Release files for every target this machine can build (bun run release), in dist/release/:
 *   lb-<version>-<platform>.tar.gz   lb (the binary), README.md and LICENSE, with no folder around them
 *   SHA256SUMS                       one `sha256sum` line per archive
 *   install.sh                       the installer, published beside them (README, "Install")
 * A target whose Bun runtime cannot be fetched (offline) is skipped with build.ts's one-line reason.
 *   --require-all    exit 1 if any target was skipped (the release workflow ships them all)
 *   --out <dir>      write them there instead of dist/release (tests release into temporary folders)
 * The archives are written with GNU tar's options (Linux, as the release workflow runs).
 */
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import pkg from "./package.json" with { type: "json" };
import { TARGETS, build, gitCommit, platformOf } from "./build.ts";

const DOCS = ["README.md", "LICENSE"];

/** Runs a command, throwing with its stderr if it fails. */
async function run(command: string[]): Promise<void> {
  const proc = Bun.spawn(command, { stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${command.join(" ")} failed (exit ${code}): ${stderr.trim()}`);
}

/** Packs `<staging>/lb` with the docs into `<out>/<name>.tar.gz` and removes the staging folder; returns the archive's name. */
async function pack(out: string, name: string, staging: string): Promise<string> {
  const archive = `${name}.tar.gz`;
  // Owned by root, not by whoever built it; gzip at its default level (-6): a 110 MB binary takes ~8 s.
  await run(["tar", "-czf", `${out}/${archive}`, "--owner=0", "--group=0", "--numeric-owner", "-C", staging, "lb", "-C", process.cwd(), ...DOCS]);
  await rm(staging, { recursive: true });
  return archive;
}

async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

async function main() {
  const { values } = parseArgs({ options: { "require-all": { type: "boolean" }, out: { type: "string" } } });
  const out = values.out ?? "dist/release";
  // A folder given is emptied by nobody but its owner: lb's release only ever removes its own dist/release.
  if (values.out !== undefined && (await readdir(out).catch(() => [])).length > 0) {
    console.error(`--out ${out}: give a new or empty folder`);
    process.exit(2);
  }
  const commit = gitCommit();
  await rm(out, { recursive: true, force: true }); // no archive of an earlier build may slip into SHA256SUMS
  await mkdir(out, { recursive: true });

  // Builds one at a time (each is a second or two); the archives compress in parallel, gzip being the slow part.
  const packing: Promise<string>[] = [];
  const skipped: string[] = [];
  for (const target of TARGETS) {
    const name = `lb-${pkg.version}-${platformOf(target)}`;
    if (await build(`${out}/${name}/lb`, commit, target)) packing.push(pack(out, name, `${out}/${name}`));
    else skipped.push(target);
  }
  const archives = await Promise.all(packing);

  // sha256sum's text format: "<hex>  <name>", so `sha256sum -c SHA256SUMS` checks them in dist/release.
  const sums = await Promise.all(archives.map(async (archive) => `${await sha256(`${out}/${archive}`)}  ${archive}\n`));
  await Bun.write(`${out}/SHA256SUMS`, sums.join(""));
  await copyFile("install.sh", `${out}/install.sh`);

  console.log(`released lb ${pkg.version} (${commit}) in ${out}: ${archives.join(", ") || "no archive"}, SHA256SUMS, install.sh`);
  if (skipped.length) console.error(`skipped ${skipped.join(", ")} (why: above)`);
  process.exit(archives.length === 0 || (values["require-all"] && skipped.length) ? 1 : 0);
}

await main();
