/** Writing a request for a backend: the request line and header fields, framed for the body lb will send. Pure. */

/** Fields lb writes itself from the body it sends (and it never waits for a 100 Continue: it has the body). */
const FRAMING = new Set(["content-length", "transfer-encoding", "expect"]);
/** RFC 9110 §9.2.2: repeating these has the same effect as sending them once. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** Methods whose requests carry a body by definition: without one they say so (RFC 9110 §8.6). */
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

/** How the body that follows the head is framed: its length in bytes, or -1 for chunked (a stream of unknown size). */
export type BodyLength = number;

/**
 * The head in latin1 (one character per byte, as header values arrive from the client's parser), followed by `body`
 * when it is given whole, in one buffer: one write, one packet for a small request.
 */
export function encodeRequest(
  method: string,
  target: string,
  headers: Iterable<[string, string]>,
  defaultHost: string,
  bodyLength: BodyLength | null,
  body: Uint8Array | null,
): Buffer {
  let head = `${method} ${target} HTTP/1.1\r\n`;
  let hasHost = false;
  for (const [name, value] of headers) {
    if (FRAMING.has(name)) continue;
    if (name === "host") hasHost = true;
    // One template with the head in it: `head += \`...\`` would make a third string (rope) per field, as fast.
    head = `${head}${name}: ${value}\r\n`;
  }
  if (!hasHost) head = `${head}host: ${defaultHost}\r\n`;
  if (bodyLength === null) {
    if (BODY_METHODS.has(method)) head += "content-length: 0\r\n";
  } else if (bodyLength < 0) head += "transfer-encoding: chunked\r\n";
  else head += `content-length: ${bodyLength}\r\n`;
  head += "\r\n";
  const headLength = head.length;
  const out = Buffer.allocUnsafe(headLength + (body?.byteLength ?? 0));
  out.write(head, 0, "latin1");
  if (body) out.set(body, headLength);
  return out;
}

const CHUNK_END = Buffer.from("\r\n");
/** The end of a chunked body (no trailers). */
export const LAST_CHUNK = Buffer.from("0\r\n\r\n");

/** One chunk of a chunked body: size line, data, CRLF. */
export function encodeChunk(data: Uint8Array): Buffer {
  const size = `${data.byteLength.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(size.length + data.byteLength + 2);
  out.write(size, 0, "latin1");
  out.set(data, size.length);
  out.set(CHUNK_END, size.length + data.byteLength);
  return out;
}
