// TypeScript takes any import of a .d.ts for types (error TS2846, and the module's type); Bun's text import embeds
// the file's text, in dist/lb too. Hence the directive and the cast.
// @ts-expect-error TS2846
import text from "./lb-hooks.d.ts" with { type: "text" };

/** The hook types as hook authors get them (`lb types`, deploy/hooks/lb-hooks.d.ts). */
export const PUBLISHED_HOOK_TYPES = text as unknown as string;
