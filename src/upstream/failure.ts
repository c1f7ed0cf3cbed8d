/**
 * What went wrong talking to a backend, in one vocabulary for forwarding (lb's own client) and health checks (fetch).
 * The kind decides what may be retried; the reason is what the log and the 502 body say.
 */

import { closeSync, openSync } from "node:fs";

export type FailureKind =
  /** No connection was made (refused, unresolvable, timed out, TLS refused): the backend cannot have seen the request. */
  | "connect"
  /** The connection closed before any answer byte: the backend may have seen the request. */
  | "reset"
  /** The backend answered something that is not acceptable HTTP. */
  | "protocol"
  /** No answer in time. */
  | "timeout"
  /** The request was called off by lb (the client left, or the backend stopped answering health checks). */
  | "cancelled"
  /** lb itself could not open a socket: it is out of file descriptors. No backend is at fault. */
  | "local";

/** How a backend broke HTTP/1.1 on a connection (which lb then closed), for the books. */
export type ProtocolErrorKind =
  /** Bytes that answer no request: after an answer's end, or on an idle connection. */
  | "stray-bytes"
  /** An answer that is not acceptable HTTP (a bad head, a broken chunked body). */
  | "malformed";

export interface Failure {
  kind: FailureKind;
  /** Short and human: "connection refused", "DNS lookup failed". */
  reason: string;
  /** More for the log, when there is more to say (what exactly was malformed). */
  detail?: string;
}

export const failure = (kind: FailureKind, reason: string): Failure => ({ kind, reason });

/** A response that is not acceptable HTTP: the client is told briefly; what exactly was wrong goes to the log. */
export const malformed = (detail: string): Failure => ({ kind: "protocol", reason: "malformed response", detail });

export const OUT_OF_DESCRIPTORS = failure("local", "lb is out of file descriptors");

const CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ENOTFOUND: "DNS lookup failed",
  EAI_AGAIN: "DNS lookup failed",
  EAI_NONAME: "DNS lookup failed",
  DNSException: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EADDRNOTAVAIL: "no local address available",
  FailedToOpenSocket: "could not open a socket",
};

const RESET_CODES: Record<string, string> = {
  ECONNRESET: "connection reset",
  ConnectionClosed: "connection closed",
  EPIPE: "connection closed",
};

/**
 * Whether this process has no file descriptor left. Bun reports a socket() that failed with EMFILE as a refused
 * connection (ECONNREFUSED, measured with Bun 1.4.5), so a refusal is checked against this before a backend is blamed:
 * opening /dev/null fails with EMFILE/ENFILE exactly when a socket would.
 */
function outOfDescriptors(): boolean {
  try {
    closeSync(openSync("/dev/null", "r"));
    return false;
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    return code === "EMFILE" || code === "ENFILE";
  }
}

/** A failure from an error thrown by fetch or Bun.connect (its `code`, or a TimeoutError). */
export function classifyFailure(error: unknown): Failure {
  const err = error as { name?: string; code?: string; message?: string };
  const code = err?.code ?? "";
  if (err?.name === "TimeoutError") return { kind: "timeout", reason: "timed out" };
  if (code === "EMFILE" || code === "ENFILE") return OUT_OF_DESCRIPTORS;
  if (code in CONNECT_CODES) return outOfDescriptors() ? OUT_OF_DESCRIPTORS : { kind: "connect", reason: CONNECT_CODES[code]! };
  if (code in RESET_CODES) return { kind: "reset", reason: RESET_CODES[code]! };
  if (code === "Malformed_HTTP_Response" || code.startsWith("Invalid")) return { kind: "protocol", reason: "malformed response" };
  // Certificate problems (fetch's and Bun.connect's codes): the request never reached the backend's application.
  if (/CERT|SELF_SIGNED|UNABLE_TO|TLS|SSL|HOSTNAME|ERR_TLS/i.test(code)) return { kind: "connect", reason: `TLS handshake failed (${code})` };
  return { kind: "protocol", reason: code || err?.message || String(error) };
}
