/**
 * Whether and how an answer is compressed for its client (`compress = true`): the coding the client's
 * Accept-Encoding prefers (zstd, br or gzip, with its q-values), and the answers that are left alone. Pure: the
 * codecs themselves are in compressor.ts.
 */

/** The codings lb compresses with, in the order it prefers them when the client ranks several alike. */
export const ENCODINGS = ["zstd", "br", "gzip"] as const;
export type Encoding = (typeof ENCODINGS)[number];

/** A qvalue (RFC 9110 §12.4.2): 0 to 1 with up to three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The coding to send for an Accept-Encoding field (null: identity). The highest q wins, ties go to lb's order; q=0
 * refuses a coding; `*` stands for the codings the field does not name; `x-gzip` is gzip. Identity is chosen over
 * every coding only when the field ranks it higher than all of them. An element that is not well formed is ignored.
 */
export function chooseEncoding(acceptEncoding: string | null): Encoding | null {
  if (!acceptEncoding) return null;
  const ranked = new Map<string, number>();
  for (const element of acceptEncoding.split(",")) {
    const [rawName = "", ...parameters] = element.split(";");
    let name = rawName.trim().toLowerCase();
    if (!name) continue;
    if (name === "x-gzip") name = "gzip";
    let q = 1;
    for (const parameter of parameters) {
      const [key = "", value = ""] = parameter.split("=");
      if (key.trim().toLowerCase() !== "q") continue;
      q = QVALUE.test(value.trim()) ? Number(value) : NaN;
    }
    if (!Number.isNaN(q) && !ranked.has(name)) ranked.set(name, q);
  }
  const anyOther = ranked.get("*") ?? 0;
  let best: Encoding | null = null;
  let bestQ = 0;
  for (const encoding of ENCODINGS) {
    const q = ranked.get(encoding) ?? anyOther;
    if (q > bestQ) [best, bestQ] = [encoding, q];
  }
  const identity = ranked.get("identity");
  return identity !== undefined && identity > bestQ ? null : best;
}

/** Types whose bytes are compressed already (or are ranges of something): compressing them again gains nothing. */
const COMPRESSED_TYPES = new Set([
  "application/octet-stream", // opaque: most often a download of an archive or a binary
  "application/zip",
  "application/gzip",
  "application/x-gzip",
  "application/zstd",
  "application/x-bzip2",
  "application/x-xz",
  "application/x-7z-compressed",
  "application/vnd.rar",
  "application/x-rar-compressed",
  "application/java-archive",
  "application/pdf",
  "application/x-shockwave-flash",
  "font/woff",
  "font/woff2",
  "application/font-woff",
  "multipart/byteranges",
]);
/** Prefixes of such types: gRPC compresses its own messages; office documents are zip files. */
const COMPRESSED_PREFIXES = ["application/grpc", "application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.opendocument."];
/** The images that are not compressed formats. */
const PLAIN_IMAGES = new Set(["image/svg+xml", "image/bmp", "image/x-ms-bmp", "image/x-icon", "image/vnd.microsoft.icon"]);

/** Whether a Content-Type is worth compressing: text and the like; not images, audio, video, archives, fonts in woff. */
export function compressibleType(contentType: string): boolean {
  const semicolon = contentType.indexOf(";");
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (!type.includes("/") || COMPRESSED_TYPES.has(type)) return false;
  if (type.startsWith("image/")) return PLAIN_IMAGES.has(type);
  if (type.startsWith("video/") || type.startsWith("audio/")) return false;
  if (type.endsWith("+zip") || type.endsWith("+gzip")) return false;
  return !COMPRESSED_PREFIXES.some((prefix) => type.startsWith(prefix));
}

/** The facts about an answer that decide whether it may be compressed at all. */
export interface Answer {
  method: string;
  status: number;
  /** The backend's fields (names in lower case). */
  headers: ReadonlyArray<readonly [string, string]>;
  /** The body's size when it came whole; null when it streams (its size is unknown). */
  size: number | null;
}

/**
 * Whether the answer may be compressed for some client (so it varies by Accept-Encoding): not for HEAD, a status
 * without a body or a range (204, 206, 304), a body under `minSize`, an untyped or compressed type, a body the backend
 * encoded already, or `Cache-Control: no-transform`.
 */
export function compressible({ method, status, headers, size }: Answer, minSize: number): boolean {
  if (method === "HEAD" || status === 204 || status === 206 || status === 304 || status < 200) return false;
  if (size !== null && (size === 0 || size < minSize)) return false;
  let typed = false;
  for (const [name, value] of headers) {
    if (name === "content-type") {
      if (!compressibleType(value)) return false;
      typed = true;
    } else if (name === "content-encoding" || name === "content-range") return false;
    else if (name === "cache-control" && /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(value)) return false;
  }
  return typed;
}

/**
 * The fields of an answer that may vary by Accept-Encoding, for a client that gets `encoding` (null: as it is):
 * `Vary: Accept-Encoding` either way (a cache must keep the variants apart); when compressed, its Content-Encoding,
 * a strong ETag made weak (the bytes differ from the backend's) and no Accept-Ranges (ranges are of the backend's
 * bytes, and lb does not compress a range). Changes `headers` in place.
 */
export function encodedFields(headers: Array<[string, string]>, encoding: Encoding | null): void {
  let varies = false;
  for (let i = headers.length - 1; i >= 0; i--) {
    const [name, value] = headers[i]!;
    if (name === "vary") varies ||= /(?:^|,)\s*(?:\*|accept-encoding)\s*(?:,|$)/i.test(value);
    else if (!encoding) continue;
    else if (name === "etag" && value.startsWith('"')) headers[i] = ["etag", `W/${value}`];
    else if (name === "accept-ranges") headers.splice(i, 1);
  }
  if (!varies) headers.push(["vary", "Accept-Encoding"]);
  if (encoding) headers.push(["content-encoding", encoding]);
}
