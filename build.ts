/** Builds dist/lb: one self-contained executable (Bun's runtime included) for this machine's platform. */
const outfile = process.argv[2] ?? "dist/lb";
/** The commit the binary is built from, shown by `lb --version` ("unknown" outside a git checkout). */
function gitCommit(): string {
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { stderr: "ignore" });
    return git.success ? git.stdout.toString().trim() : "unknown";
  } catch {
    return "unknown"; // no git installed
  }
}
const commit = gitCommit();
const result = await Bun.build({
  entrypoints: ["src/main.ts"],
  compile: { outfile },
  minify: true,
  // Bytecode needs ESM output (consola uses import.meta); it trims startup by a few milliseconds.
  bytecode: true,
  format: "esm",
  define: { "process.env.NODE_ENV": JSON.stringify("production"), "process.env.LB_BUILD_COMMIT": JSON.stringify(commit) },
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
console.log(`built ${outfile} (${commit})`);
export {};
