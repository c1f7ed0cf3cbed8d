/** ClientHello bytes built by hand, for the parser's tests and for raw clients through lb. */
export const u16 = (n: number) => [n >> 8, n & 0xff];
export const vector16 = (bytes: number[]) => [...u16(bytes.length), ...bytes];
export const ascii = (text: string) => [...text].map((c) => c.charCodeAt(0));

/** An extension: type, then its data as a 16-bit vector. */
export const extension = (type: number, data: number[]) => [...u16(type), ...vector16(data)];
export const serverName = (name: string) => extension(0, vector16([0, ...vector16(ascii(name))]));
/** TLS 1.3's encrypted_client_hello (0xfe0d), outer: an opaque payload the passthrough cannot read. */
export const ech = extension(0xfe0d, [0, 0, 1, 0, 1, 7, ...vector16([1, 2, 3]), ...vector16(new Array(64).fill(9))]);

/** A ClientHello handshake message with these extensions (none: an old hello without the extensions block). */
export function clientHello(extensions: number[] | null): number[] {
  const body = [
    3, 3, // legacy_version TLS 1.2
    ...new Array(32).fill(7), // random
    32, ...new Array(32).fill(1), // session id
    ...vector16([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]), // cipher suites
    1, 0, // compression: null
    ...(extensions === null ? [] : vector16(extensions)),
  ];
  return [1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
}

/** The handshake bytes in records of at most `size` bytes each. */
export function records(handshake: number[], size = 16_384): Uint8Array {
  const out: number[] = [];
  for (let at = 0; at < handshake.length; at += size) {
    const part = handshake.slice(at, at + size);
    out.push(0x16, 3, 1, ...u16(part.length), ...part);
  }
  return Uint8Array.from(out);
}

export const named = (name: string) => records(clientHello([...extension(10, [0, 2, 0, 29]), ...serverName(name), ...extension(43, [2, 3, 4])]));

