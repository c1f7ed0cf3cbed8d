/**
 * A backend socket's kernel receive buffer, made small once the answer it carries waits for a slow client.
 *
 * Bun reads a socket in pieces as large as the kernel has queued (up to 512 KiB), and lb holds each piece it read
 * until the client takes it: with thousands of slow readers, that is hundreds of MiB. A small receive buffer keeps
 * every later piece small and leaves the rest of the answer in the backend's send buffer, held back by TCP flow
 * control (HAProxy gets the same from its 16 KiB reads). Bun has no option for it, so this is setsockopt(SO_RCVBUF)
 * through bun:ffi, on Linux (glibc or musl) and macOS; where libc cannot be loaded, nothing is capped and pieces stay
 * as large as Bun reads them.
 */
import { FFIType, dlopen, ptr } from "bun:ffi";

/**
 * The receive buffer asked for (Linux doubles it for its bookkeeping): Bun then reads at most about 128 KiB at a time.
 * Not less: shrunk below about two segments of loopback's 64 KiB MSS mid-transfer, the window stalled (measured: a
 * 64 MiB answer stopped for good at 16 and 32 KiB), and a backend on the same host is common.
 */
export const CAPPED_RECEIVE_BUFFER_BYTES = 64 * 1024;

interface SocketOptionCall {
  setsockopt(fd: number, level: number, name: number, value: ReturnType<typeof ptr>, length: number): number;
}

const PLATFORM = {
  linux: { level: 1, name: 8, libraries: ["libc.so.6", `libc.musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`] },
  darwin: { level: 0xffff, name: 0x1002, libraries: ["libc.dylib"] },
}[process.platform as "linux" | "darwin"];

let libc: SocketOptionCall | null | undefined;

/** setsockopt from the first libc that loads; null when none does (or on another platform). Loaded once. */
function loadLibc(): SocketOptionCall | null {
  for (const library of PLATFORM?.libraries ?? []) {
    try {
      const loaded = dlopen(library, { setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 } });
      return loaded.symbols as unknown as SocketOptionCall;
    } catch {
      // not this library: try the next
    }
  }
  return null;
}

const value = new Int32Array([CAPPED_RECEIVE_BUFFER_BYTES]);

/** Caps the receive buffer of the socket with this file descriptor; false when it could not be done. */
export function capReceiveBuffer(fd: number | undefined): boolean {
  if (fd === undefined || fd < 0 || !PLATFORM) return false;
  libc ??= loadLibc();
  return libc !== null && libc.setsockopt(fd, PLATFORM.level, PLATFORM.name, ptr(value), 4) === 0;
}
