/**
 * How long each codec and level takes for a 64 KiB answer, and how small it makes it: the measurement behind
 * src/proxy/compressor.ts's LEVELS.
 *
 *   taskset -c 0 bun bench/compression-levels.ts            # prints a Markdown table
 *
 * Two answers of 64 KiB: the JSON that bench/backend.ts serves at /text, and prose (docs/*.md, joined). Each level
 * compresses each answer whole, as lb does an answer that came whole: ROUNDS times after a warm-up; the median time is
 * shown.
 */
import { readdirSync, readFileSync } from "node:fs";
import zlib from "node:zlib";
import { jsonText } from "./text-answer.ts";

const ROUNDS = 40;
const SIZE = 64 * 1024;
const docs = new URL("../docs/", import.meta.url).pathname;
const prose = Buffer.from(readdirSync(docs).map((name) => readFileSync(docs + name, "utf8")).join("\n")).subarray(0, SIZE);
const answers = { json: jsonText(SIZE), prose };

const { constants } = zlib;
const codecs: Array<[string, (bytes: Uint8Array) => Uint8Array]> = [
  ...[1, 2, 3, 4, 6, 9].map((level): [string, (b: Uint8Array) => Uint8Array] => [`gzip ${level}`, (b) => zlib.gzipSync(b, { level })]),
  ...[1, 3, 4, 5, 6, 11].map((quality): [string, (b: Uint8Array) => Uint8Array] => [
    `br ${quality}`,
    (b) => zlib.brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: quality, [constants.BROTLI_PARAM_SIZE_HINT]: b.byteLength } }),
  ]),
  ...[1, 3, 6, 9, 19].map((level): [string, (b: Uint8Array) => Uint8Array] => [`zstd ${level}`, (b) => Bun.zstdCompressSync(b, { level })]),
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

console.log(`| codec and level | ${Object.keys(answers).map((name) => `${name}: ms per 64 KiB | ${name}: size`).join(" | ")} |`);
console.log(`|---|${Object.keys(answers).map(() => "---:|---:").join("|")}|`);
for (const [name, compress] of codecs) {
  const cells = Object.values(answers).map((answer) => {
    const rounds = name.endsWith(" 11") || name.endsWith(" 19") ? 5 : ROUNDS;
    let size = compress(answer).byteLength;
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      size = compress(answer).byteLength;
      times.push(performance.now() - started);
    }
    return `${median(times).toFixed(2)} | ${((100 * size) / answer.byteLength).toFixed(1)}%`;
  });
  console.log(`| ${name} | ${cells.join(" | ")} |`);
}
