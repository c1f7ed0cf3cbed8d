import pkg from "../package.json" with { type: "json" };

/** Inlined at build time, so the compiled binary knows its version without package.json beside it. */
export const VERSION: string = pkg.version;

/** The git commit dist/lb was built from (build.ts defines it); "source" when run with `bun src/main.ts`. */
export const COMMIT: string = process.env.LB_BUILD_COMMIT ?? "source";

/** What `lb --version` prints: "0.1.0 (abc1234)". */
export const VERSION_LINE = `${VERSION} (${COMMIT})`;

/** What `lb version --json` prints and lb_build_info carries. */
export const BUILD_INFO = {
  version: VERSION,
  commit: COMMIT,
  bun: Bun.version,
  target: `${process.platform}-${process.arch}`,
} as const;
