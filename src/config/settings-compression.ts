/** The compression settings (`compress = true`, src/proxy/compression.ts): the settings table (settings.ts) lists these with its own. */
import type { Setting } from "./settings.ts";
import type { Config } from "./types.ts";
import { boolean, byteSize } from "./values.ts";

type Spec<K extends keyof Config> = Omit<Setting<K>, "name"> & { name?: string };

export const COMPRESSION_SPECS: [Spec<"compress">, Spec<"compressMinSize">] = [
  {
    key: "compress", perPool: true, perRoute: true, group: "edge", type: "boolean", fallback: false,
    description: "Compress answers (zstd, br or gzip, as the client's Accept-Encoding prefers) when their type gains from it (docs/edge.md#compression)",
    example: "--compress", parse: boolean,
  },
  {
    key: "compressMinSize", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "size", fallback: 1024, shownDefault: "1k",
    description: "With --compress, answers smaller than this go uncompressed", example: "--compress-min-size 4k", parse: byteSize,
  },
];
