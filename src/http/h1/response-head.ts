/**
 * Parsing a backend's answer head (status line and header fields), strictly: the backend is trusted less than it
 * seems, and whatever lb accepts here it passes on to a client. Pure: bytes in, a head or a reason out.
 */
import { HOP_BY_HOP, connectionListed, isToken } from "../hop-by-hop.ts";

/** How the body after the head is delimited (RFC 9112 §6.3). */
export type Framing =
  /** No body: HEAD, 1xx, 204, 304. */
  | "none"
  | "length"
  | "chunked"
  /** Until the backend closes the connection. */
  | "close";

export interface ResponseHead {
  status: number;
  statusText: string;
  /** As received, in order, minus the hop-by-hop and framing fields (lb frames the body for its client itself). */
  headers: [string, string][];
  framing: Framing;
  /** The body's length when framing is "length"; for a HEAD answer, the length it declared (or -1). */
  length: number;
  /** The connection may carry another request once this answer has been read. */
  reusable: boolean;
  /** How long the backend keeps an idle connection open, from its Keep-Alive header (timeout=N), in ms; 0 if unsaid. */
  keepAliveMs: number;
}

/** Most bytes an answer head may take; past it the answer is refused (HAProxy's whole buffer is 16 KiB). */
export const RESPONSE_HEAD_LIMIT_BYTES = 64 * 1024;

const DIGITS = /^\d{1,15}$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout=(\d{1,6})/i;
const SP = 32;
const TAB = 9;

/**
 * Parses an answer head: `text` is the head in latin1 (one character per byte), without the blank line that ends it.
 * Returns the reason as a string when the answer must be refused (lb answers 502 and drops the connection).
 * Written as a scan rather than with regular expressions: it runs for every answer.
 */
export function parseResponseHead(text: string, method: string): ResponseHead | string {
  const firstEnd = text.indexOf("\r\n");
  const statusEnd = firstEnd === -1 ? text.length : firstEnd;
  const status = parseStatusLine(text, statusEnd);
  if (status < 0) return `bad status line "${printable(text.slice(0, statusEnd))}"`;
  const http11 = text.charCodeAt(7) === 49; // "HTTP/1.1"
  const fields: [string, string][] = [];
  let contentLength = -1;
  let transferEncoding: string | null = null;
  let connection = "";
  let keepAliveMs = 0;
  for (let at = statusEnd + 2; at < text.length; ) {
    let end = text.indexOf("\r\n", at);
    if (end === -1) end = text.length;
    const colon = text.indexOf(":", at);
    // A field name with whitespace before its colon, or an obs-fold continuation line, is refused (RFC 9112 §5).
    if (colon <= at || colon > end) {
      const first = text.charCodeAt(at);
      return first === SP || first === TAB ? "folded header line" : "header line without a name";
    }
    if (!isToken(text, at, colon)) return `bad header name "${printable(text.slice(at, colon))}"`;
    const name = text.slice(at, colon).toLowerCase();
    let from = colon + 1;
    let to = end;
    while (from < to && isSpace(text.charCodeAt(from))) from++;
    while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
    for (let i = from; i < to; i++) {
      const c = text.charCodeAt(i);
      if ((c < SP && c !== TAB) || c === 127) return `control character in header ${name}`;
    }
    const value = text.slice(from, to);
    at = end + 2;
    if (name === "content-length") {
      const length = parseContentLength(value);
      if (length < 0 || (contentLength >= 0 && length !== contentLength)) return "bad or conflicting Content-Length";
      contentLength = length;
    } else if (name === "transfer-encoding") {
      transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
    } else if (name === "connection") {
      connection = connection ? `${connection}, ${value}` : value;
    } else if (name === "keep-alive") {
      const timeout = KEEP_ALIVE_TIMEOUT.exec(value);
      if (timeout) keepAliveMs = Number(timeout[1]) * 1000;
    }
    fields.push([name, value]);
  }
  const listed = connection ? connectionListed(connection) : NONE;
  let reusable = http11 ? !listed.has("close") : listed.has("keep-alive");
  let framing: Framing;
  let length = contentLength;
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    framing = "none";
    // A 204 that claims a body, or a bodiless answer that claims chunks, may well send them after all: bytes that
    // would be read as the next answer. Such a connection is not reused.
    if ((status === 204 && contentLength > 0) || (transferEncoding !== null && method !== "HEAD")) reusable = false;
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
  // Hop-by-hop fields are consumed here; Content-Length too (lb frames the body for its client), but a HEAD answer
  // keeps it: it is the size of what a GET would get, which is what the client asked about.
  const keepLength = framing === "none" && method === "HEAD";
  // Filtered in place: a filter callback would cost every answer a closure and a second array.
  let kept = 0;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const name = field[0];
    if (HOP_BY_HOP.has(name) || listed.has(name) || (name === "content-length" && !keepLength)) continue;
    fields[kept++] = field;
  }
  fields.length = kept;
  const headers = fields;
  // A HEAD answer with no length of its own would get "content-length: 0" from Bun.serve — a claim that a GET is
  // empty. It says chunked instead: how lb frames a body of unknown length, and what a GET through lb may get.
  if (keepLength && contentLength < 0 && status >= 200 && status !== 204 && status !== 304) headers.push(["transfer-encoding", "chunked"]);
  return { status, statusText: text.slice(13, statusEnd), headers, framing, length, reusable, keepAliveMs };
}

const NONE: ReadonlySet<string> = new Set();

function isSpace(c: number): boolean {
  return c === SP || c === TAB;
}

/** The status of "HTTP/1.x NNN[ reason]" (reason without control characters), or -1. */
function parseStatusLine(text: string, end: number): number {
  if (end < 12 || !text.startsWith("HTTP/1.") || text.charCodeAt(8) !== SP) return -1;
  const minor = text.charCodeAt(7);
  if (minor !== 48 && minor !== 49) return -1;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    status = status * 10 + digit;
  }
  // 1xx to 5xx only: a client cannot be given any other (and 6xx-9xx mean nothing in HTTP).
  if (status < 100 || status > 599) return -1;
  if (end > 12 && text.charCodeAt(12) !== SP) return -1;
  for (let i = 13; i < end; i++) {
    const c = text.charCodeAt(i);
    if ((c < SP && c !== TAB) || c === 127) return -1;
  }
  return status;
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
