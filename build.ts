/**
 * Builds lb into one self-contained executable (Bun's runtime included).
 *   bun build.ts                      dist/lb for this machine
 *   bun build.ts --target <target>    dist/lb-<target>, e.g. bun-linux-arm64, bun-linux-x64-musl, bun-darwin-arm64
 *   bun build.ts --all                every target in TARGETS
 *   --out <file>                      with one target (or none): write the binary there instead (tests build into
 *                                     temporary folders, never into dist/)
 * Other targets need Bun's runtime for them, which Bun downloads; offline, only this machine's target builds, and
 * the others fail with a line that says so. release.ts builds on the exports below.
 */
import { parseArgs } from "node:util";

export const TARGETS = ["bun-linux-x64", "bun-linux-arm64", "bun-linux-x64-musl", "bun-linux-arm64-musl", "bun-darwin-x64", "bun-darwin-arm64"];

/** A Bun target's platform as lb's file names spell it: bun-linux-x64-musl → linux-x64-musl. */
export const platformOf = (target: string) => target.replace(/^bun-/, "");

/** The commit the binary is built from, shown by `lb --version` ("unknown" outside a git checkout). */
export function gitCommit(): string {
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { stderr: "ignore" });
    return git.success ? git.stdout.toString().trim() : "unknown";
  } catch {
    return "unknown"; // no git installed
  }
}

/** The first line of why Bun.build threw: its first build message, since the error's own is only "Bundle failed". */
function failureReason(error: unknown): string {
  const first: unknown = error instanceof AggregateError && error.errors.length ? error.errors[0] : error;
  const message = typeof first === "object" && first && "message" in first ? String(first.message) : String(first);
  return message.split("\n")[0]!;
}

/** Compiles lb to `outfile` (for `target`, else this machine); on failure prints why and returns false. */
export async function build(outfile: string, commit: string, target?: string): Promise<boolean> {
  try {
    const result = await Bun.build({
      // The worker processes' watchdog runs as a Worker of its own module (worker.ts), which the binary must embed.
      entrypoints: ["src/main.ts", "src/cluster/watchdog.ts"],
      compile: target ? { outfile, target: target as Bun.Build.CompileTarget } : { outfile },
      minify: true,
      // Bytecode needs ESM output (consola uses import.meta); it trims startup by a few milliseconds.
      bytecode: true,
      format: "esm",
      define: { "process.env.NODE_ENV": JSON.stringify("production"), "process.env.LB_BUILD_COMMIT": JSON.stringify(commit) },
    });
    if (result.success) {
      console.log(`built ${outfile} (${commit})`);
      return true;
    }
    for (const log of result.logs) console.error(log);
  } catch (error) {
    console.error(
      `cannot build ${target}: ${failureReason(error)}. Bun downloads the runtime for another target from the internet; ` +
        "build it on a machine with internet access (or with that runtime in $BUN_INSTALL_CACHE_DIR).",
    );
  }
  return false;
}

async function main() {
  const { values } = parseArgs({ options: { target: { type: "string" }, all: { type: "boolean" }, out: { type: "string" } }, allowPositionals: true });
  const commit = gitCommit();
  const targets = values.all ? TARGETS : values.target ? [values.target] : [undefined];
  if (values.target && !TARGETS.includes(values.target)) {
    console.error(`unknown target ${values.target}; known: ${TARGETS.join(", ")}`);
    process.exit(2);
  }
  if (values.out !== undefined && values.all) {
    console.error("--out names one file: give it with one --target (or none), not with --all");
    process.exit(2);
  }
  let ok = true;
  for (const target of targets) ok = (await build(values.out ?? (target ? `dist/lb-${platformOf(target)}` : "dist/lb"), commit, target)) && ok;
  process.exit(ok ? 0 : 1);
}

if (import.meta.main) await main();
