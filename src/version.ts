import pkg from "../package.json" with { type: "json" };

/** Inlined at build time, so the compiled binary knows its version without package.json beside it. */
export const VERSION: string = pkg.version;
