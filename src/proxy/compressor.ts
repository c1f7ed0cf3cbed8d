/**
 * The codecs behind `compress = true` (compression.ts decides when): a whole answer is compressed at once; a streamed
 * one piece by piece as the client reads, each piece flushed so an event (SSE) is not held back, and the backend read
 * only as fast as the client takes the compressed bytes.
 */
import type * as Zlib from "node:zlib";
import type { UpstreamResponse } from "../upstream/client.ts";
import type { CompressionSettings } from "../edge/policy.ts";
import { type Encoding, chooseEncoding, compressible, encodedFields } from "./compression.ts";

/**
 * Levels chosen by measuring 64 KiB of JSON and of prose (bench/compression-levels.ts, bench/results/
 * 2026-12-07-compression.md): past these, each step costs much more time than it saves bytes. zstd 3 (its default)
 * takes a tenth of a millisecond; brotli 4 takes what gzip 6 takes and is never larger (quality 5: 10–60% more
 * time for 2–15% less); gzip 4 is within 1% of level 6's size in 80% of its time.
 */
export const LEVELS = { zstd: 3, br: 4, gzip: 4 } as const satisfies Record<Encoding, number>;

/**
 * node:zlib, loaded the first time brotli or a stream is encoded: loading it costs every process about 4 MiB of
 * memory, and zstd and gzip of a whole body (Bun's own) or no compression at all never need it.
 */
let zlibModule: typeof Zlib | undefined;
const zlib = (): typeof Zlib => (zlibModule ??= process.getBuiltinModule("node:zlib"));

/** The whole of `bytes`, encoded. */
export function compressWhole(bytes: Uint8Array, encoding: Encoding): Uint8Array {
  if (encoding === "zstd") return Bun.zstdCompressSync(bytes, { level: LEVELS.zstd });
  if (encoding === "gzip") return Bun.gzipSync(bytes as Uint8Array<ArrayBuffer>, { level: LEVELS.gzip }); // (never a shared buffer)
  const { brotliCompressSync, constants } = zlib();
  return brotliCompressSync(bytes, {
    params: { [constants.BROTLI_PARAM_QUALITY]: LEVELS.br, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength },
  });
}

/** A streaming encoder (node:zlib) and the flush that makes it give out all it has taken so far. */
function streamingEncoder(encoding: Encoding): { encoder: Zlib.Gzip | Zlib.BrotliCompress | Zlib.ZstdCompress; flush: number } {
  const codecs = zlib();
  const { constants } = codecs;
  if (encoding === "zstd") {
    return { encoder: codecs.createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: LEVELS.zstd } }), flush: constants.ZSTD_e_flush };
  }
  if (encoding === "gzip") return { encoder: codecs.createGzip({ level: LEVELS.gzip }), flush: constants.Z_SYNC_FLUSH };
  return { encoder: codecs.createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: LEVELS.br } }), flush: constants.BROTLI_OPERATION_FLUSH };
}

/**
 * `source`, encoded as it is read: one piece of the source per read of the result, flushed whole, so the backend is
 * read only as fast as the client takes what lb sends (the piece and the encoder's state are all lb holds). A source
 * that fails fails the result; a reader that leaves cancels the source and frees the encoder.
 */
export function compressStream(source: ReadableStream<Uint8Array>, encoding: Encoding, onOutput: (bytesIn: number, bytesOut: number) => void): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const { encoder, flush } = streamingEncoder(encoding);
  let output: Buffer[] = [];
  encoder.on("data", (piece: Buffer) => output.push(piece));
  /** What the encoder gave out once `step` (a flush, or the end) is done; an encoder error rejects it. */
  const given = (step: (done: () => void) => void) =>
    new Promise<Uint8Array>((resolve, reject) => {
      encoder.once("error", reject);
      step(() => {
        encoder.off("error", reject);
        const piece = output.length === 1 ? output[0]! : Buffer.concat(output);
        output = [];
        resolve(piece);
      });
    });
  const flushed = (piece: Uint8Array) => given((done) => {
    encoder.write(piece);
    encoder.flush(flush, done);
  });
  // The end: "end" comes after the last output ("finish", end()'s callback, may come before it).
  const ended = () => given((done) => encoder.once("end", done).end());
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const read = await reader.read();
          const piece = read.done ? await ended() : await flushed(read.value);
          onOutput(read.done ? 0 : read.value.byteLength, piece.byteLength);
          if (piece.byteLength > 0) controller.enqueue(piece);
          if (read.done) controller.close();
        } catch (error) {
          encoder.destroy();
          controller.error(error);
        }
      },
      cancel(reason) {
        encoder.destroy();
        return reader.cancel(reason);
      },
    },
    // 0: a pull means the client took the last piece, so nothing waits in lb beyond the piece being encoded.
    { highWaterMark: 0 },
  );
}

/** The counters compression adds to (a backend's metrics). */
export type CompressionCounts = Record<"compressedZstd" | "compressedBr" | "compressedGzip" | "compressionIn" | "compressionOut", number>;

const COUNTER_OF = { zstd: "compressedZstd", br: "compressedBr", gzip: "compressedGzip" } as const satisfies Record<Encoding, keyof CompressionCounts>;

/**
 * Makes `upstream` the answer for this client: compressed in the coding its Accept-Encoding prefers, when the answer
 * may be compressed (compression.ts); its fields say so. A whole body that would not shrink goes as it is.
 */
export function compressAnswer(upstream: UpstreamResponse, request: Request, settings: CompressionSettings, counts: CompressionCounts): void {
  const { body } = upstream;
  if (body === null) return;
  const size = body instanceof Uint8Array ? body.byteLength : null;
  if (!compressible({ method: request.method, status: upstream.status, headers: upstream.headers, size }, settings.minSize)) return;
  let encoding = chooseEncoding(request.headers.get("accept-encoding"));
  const encoded = (bytesIn: number, bytesOut: number) => {
    counts.compressionIn += bytesIn;
    counts.compressionOut += bytesOut;
  };
  if (encoding && body instanceof Uint8Array) {
    const bytes = compressWhole(body, encoding);
    if (bytes.byteLength < body.byteLength) {
      upstream.body = bytes;
      encoded(body.byteLength, bytes.byteLength);
    } else encoding = null; // incompressible after all: the backend's bytes are smaller
  } else if (encoding && body instanceof ReadableStream) upstream.body = compressStream(body, encoding, encoded);
  if (encoding) counts[COUNTER_OF[encoding]]++;
  encodedFields(upstream.headers, encoding);
}
