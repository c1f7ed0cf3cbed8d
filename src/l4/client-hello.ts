/**
 * The server name a TLS client asks for, read from the first bytes of its connection (its ClientHello's server_name
 * extension, RFC 6066), without terminating TLS: what HAProxy's `req.ssl_sni` and nginx's `ssl_preread` read. Pure:
 * bytes in, a verdict out. The caller keeps the bytes it has and asks again when more arrive; nothing is consumed, so
 * the same bytes go on to the backend untouched.
 */

export type HelloRead =
  /** Not enough bytes yet to decide. */
  | { kind: "more" }
  /** A ClientHello: its server name (lower case), or null when it names none. */
  | { kind: "hello"; serverName: string | null }
  /** The client does not speak TLS at all (a first byte no TLS record starts with): it names no server. */
  | { kind: "not-tls" }
  /** It looks like TLS but breaks it, or its ClientHello is larger than lb reads: lb closes the connection. */
  | { kind: "bad"; reason: string };

/** The most a ClientHello may take, records included: post-quantum key shares make 2 KiB hellos; 64 KiB is ample. */
export const MAX_HELLO_BYTES = 64 * 1024;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
/** A TLS record's plaintext is at most 2^14 bytes (RFC 8446 5.1). */
const MAX_RECORD = 16_384;
const EXTENSION_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;
/** Letters, digits, hyphens, underscores and dots: what a host name in SNI may hold (no IP literals, RFC 6066 3). */
const HOST_NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** Reads the first bytes of a connection; see HelloRead. */
export function readClientHello(bytes: Uint8Array): HelloRead {
  if (bytes.length === 0) return { kind: "more" };
  if (bytes[0] !== CONTENT_HANDSHAKE) {
    // An SSLv2-format hello (a two-byte length with its top bit set, then message type 1): TLS, but no extensions.
    if ((bytes[0]! & 0x80) !== 0) return bytes.length < 3 ? { kind: "more" } : bytes[2] === 1 ? { kind: "hello", serverName: null } : { kind: "not-tls" };
    return { kind: "not-tls" };
  }
  const handshake = handshakeBytes(bytes);
  if ("kind" in handshake) return handshake;
  const { data } = handshake;
  if (data.length >= 1 && data[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "bad", reason: `handshake message ${data[0]}, not a ClientHello` };
  if (data.length < 4) return { kind: "more" };
  const length = (data[1]! << 16) | (data[2]! << 8) | data[3]!;
  if (length > MAX_HELLO_BYTES) return { kind: "bad", reason: `a ClientHello of ${length} bytes, over ${MAX_HELLO_BYTES}` };
  if (data.length < 4 + length) return handshake.complete ? { kind: "bad", reason: "the ClientHello is cut short" } : { kind: "more" };
  return serverNameOf(data.subarray(4, 4 + length));
}

/**
 * The handshake bytes carried by the whole records at the start (a ClientHello may span records), and whether no
 * more can follow (a non-handshake record came). A record still arriving waits; a malformed one is bad.
 */
function handshakeBytes(bytes: Uint8Array): { data: Uint8Array; complete: boolean } | HelloRead {
  const parts: Uint8Array[] = [];
  let at = 0;
  let size = 0;
  while (at + RECORD_HEADER <= bytes.length) {
    const type = bytes[at]!;
    if (type !== CONTENT_HANDSHAKE) {
      if (parts.length) return { data: join(parts, size), complete: true };
      return { kind: "bad", reason: `record type ${type} before the ClientHello` };
    }
    if (bytes[at + 1] !== 3) return { kind: "bad", reason: `record version ${bytes[at + 1]}.${bytes[at + 2]}` };
    const length = (bytes[at + 3]! << 8) | bytes[at + 4]!;
    if (length === 0 || length > MAX_RECORD) return { kind: "bad", reason: `a handshake record of ${length} bytes` };
    if (at + RECORD_HEADER + length > bytes.length) break;
    parts.push(bytes.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length));
    size += length;
    at += RECORD_HEADER + length;
  }
  if (at >= MAX_HELLO_BYTES || bytes.length > MAX_HELLO_BYTES + RECORD_HEADER + MAX_RECORD) {
    return { kind: "bad", reason: `no whole ClientHello in ${bytes.length} bytes` };
  }
  return { data: join(parts, size), complete: false };
}

function join(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A cursor over a ClientHello's body: every read is bounds-checked, and a short one throws Truncated. */
class Truncated extends Error {}

class Cursor {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  get left(): number {
    return this.bytes.length - this.at;
  }

  skip(n: number): void {
    if (n > this.left) throw new Truncated();
    this.at += n;
  }

  uint(size: 1 | 2): number {
    if (size > this.left) throw new Truncated();
    const value = size === 1 ? this.bytes[this.at]! : (this.bytes[this.at]! << 8) | this.bytes[this.at + 1]!;
    this.at += size;
    return value;
  }

  /** A length-prefixed vector's bytes. */
  vector(lengthSize: 1 | 2): Uint8Array {
    const length = this.uint(lengthSize);
    if (length > this.left) throw new Truncated();
    const out = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }
}

/**
 * legacy_version, random, session id, cipher suites, compression methods, then the extensions (absent in old
 * hellos). With TLS 1.3's Encrypted Client Hello this is the outer hello: its name is the public one, which is all
 * a passthrough can see and what it routes by.
 */
function serverNameOf(body: Uint8Array): HelloRead {
  const hello = new Cursor(body);
  try {
    hello.skip(2 + 32);
    hello.vector(1);
    hello.vector(2);
    hello.vector(1);
    if (hello.left === 0) return { kind: "hello", serverName: null };
    const extensions = new Cursor(hello.vector(2));
    while (extensions.left > 0) {
      const type = extensions.uint(2);
      const data = extensions.vector(2);
      if (type === EXTENSION_SERVER_NAME) return hostNameOf(new Cursor(data));
    }
    return { kind: "hello", serverName: null };
  } catch (error) {
    if (error instanceof Truncated) return { kind: "bad", reason: "a ClientHello field runs past its end" };
    throw error;
  }
}

function hostNameOf(extension: Cursor): HelloRead {
  const list = new Cursor(extension.vector(2));
  while (list.left > 0) {
    const type = list.uint(1);
    const name = list.vector(2);
    if (type !== NAME_TYPE_HOST) continue;
    const text = new TextDecoder("latin1").decode(name).toLowerCase().replace(/\.$/, "");
    if (!HOST_NAME.test(text) || text.length > 253) return { kind: "bad", reason: "the server name is not a host name" };
    return { kind: "hello", serverName: text };
  }
  return { kind: "hello", serverName: null };
}
