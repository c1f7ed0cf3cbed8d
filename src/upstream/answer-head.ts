/**
 * Parsing a backend's answer head (status line and header fields), strictly: the backend is trusted less than it
 * seems, and whatever lb accepts here it passes on to a client. Pure: bytes in, a head or a reason out.
 */

/** How the body after the head is delimited (RFC 9112 §6.3). */
export type Framing =
  /** No body: HEAD, 1xx, 204, 304. */
  | "none"
  | "length"
  | "chunked"
  /** Until the backend closes the connection. */
  | "close";

export interface AnswerHead {
  status: number;
  statusText: string;
  /** As received, in order, minus the hop-by-hop and framing fields (lb frames the body for its client itself). */
  headers: [string, string][];
  framing: Framing;
  /** The body's length when framing is "length"; for a HEAD answer, the length it declared (or -1). */
  length: number;
  /** The connection may carry another request once this answer has been read. */
  reusable: boolean;
}

/** Most bytes an answer head may take; past it the answer is refused (HAProxy's whole buffer is 16 KiB). */
export const ANSWER_HEAD_LIMIT_BYTES = 64 * 1024;

/** RFC 9110 §5.6.2: what a field name may be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value may hold visible characters, spaces, tabs and obs-text; never CR, LF, NUL or other controls. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/;
const DIGITS = /^\d{1,15}$/;

/** Fields that describe one connection or the body's framing: consumed here, never passed on (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
  "content-length",
]);

/**
 * Parses an answer head: `text` is the head in latin1 (one character per byte), without the blank line that ends it.
 * Returns the reason as a string when the answer must be refused (lb answers 502 and drops the connection).
 */
export function parseAnswerHead(text: string, method: string): AnswerHead | string {
  const lines = text.split("\r\n");
  const statusLine = STATUS_LINE.exec(lines[0]!);
  if (!statusLine) return `bad status line "${printable(lines[0]!)}"`;
  const status = Number(statusLine[2]);
  const fields: [string, string][] = [];
  let contentLength = -1;
  let transferEncoding: string | null = null;
  let connection = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    // A field name with whitespace before its colon, or an obs-fold continuation line, is refused (RFC 9112 §5).
    if (colon <= 0) return line.startsWith(" ") || line.startsWith("\t") ? "folded header line" : "header line without a name";
    const name = line.slice(0, colon).toLowerCase();
    if (!TOKEN.test(name)) return `bad header name "${printable(name)}"`;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (BAD_VALUE.test(value)) return `control character in header ${name}`;
    if (name === "content-length") {
      const length = parseContentLength(value);
      if (length < 0 || (contentLength >= 0 && length !== contentLength)) return "bad or conflicting Content-Length";
      contentLength = length;
    } else if (name === "transfer-encoding") {
      transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
    } else if (name === "connection") {
      connection = connection ? `${connection}, ${value}` : value;
    }
    fields.push([name, value]);
  }
  const http11 = statusLine[1] === "1";
  const tokens = connection.toLowerCase().split(",").map((token) => token.trim());
  let reusable = http11 ? !tokens.includes("close") : tokens.includes("keep-alive");
  let framing: Framing;
  let length = contentLength;
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = "none";
  } else if (transferEncoding !== null) {
    // Only plain chunked is understood; any other coding would have to be passed on undecoded, and a body framed
    // two ways is how requests are smuggled. With a Content-Length beside it, chunked wins and the connection is
    // not reused (RFC 9112 §6.3).
    if (transferEncoding.toLowerCase() !== "chunked") return `unsupported Transfer-Encoding "${printable(transferEncoding)}"`;
    framing = "chunked";
    if (contentLength >= 0) reusable = false;
    length = -1;
  } else if (contentLength >= 0) {
    framing = "length";
  } else {
    framing = "close";
    reusable = false;
  }
  const connectionListed = new Set(tokens.filter((token) => TOKEN.test(token)));
  const headers: [string, string][] = [];
  for (const field of fields) {
    const [name] = field;
    // A HEAD answer keeps its Content-Length: it is the size of what a GET would get, which the client asked for.
    if (name === "content-length" && framing === "none" && method === "HEAD") headers.push(field);
    else if (!HOP_BY_HOP.has(name) && !connectionListed.has(name)) headers.push(field);
  }
  return { status, statusText: statusLine[3] ?? "", headers, framing, length, reusable };
}

/** A Content-Length value: digits, or a list of equal ones ("5, 5", RFC 9110 §8.6); -1 when it is not one. */
function parseContentLength(value: string): number {
  let length = -1;
  for (const part of value.split(",")) {
    const digits = part.trim();
    if (!DIGITS.test(digits)) return -1;
    const n = Number(digits);
    if (length >= 0 && n !== length) return -1;
    length = n;
  }
  return length;
}

/** At most 60 characters of untrusted text, control characters escaped, for a log line. */
function printable(text: string): string {
  return JSON.stringify(text.slice(0, 60)).slice(1, -1);
}
