/** What went wrong talking to a backend, from the error fetch threw. Shared by health checks and forwarding. */

export type FailureKind =
  /** No connection was made: the backend cannot have seen the request. */
  | "connect"
  /** The connection closed before any response byte: the backend may have seen the request. */
  | "reset"
  /** The backend answered something that is not HTTP. */
  | "protocol"
  /** No answer in time. */
  | "timeout";

export interface Failure {
  kind: FailureKind;
  /** Short and human: "connection refused", "DNS lookup failed". */
  reason: string;
}

const CONNECT_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ENOTFOUND: "DNS lookup failed",
  EAI_AGAIN: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  FailedToOpenSocket: "could not open a socket",
};

const RESET_CODES: Record<string, string> = {
  ECONNRESET: "connection reset",
  ConnectionClosed: "connection closed",
  EPIPE: "connection closed",
};

export function classifyFailure(error: unknown): Failure {
  const err = error as { name?: string; code?: string; message?: string };
  const code = err?.code ?? "";
  if (err?.name === "TimeoutError") return { kind: "timeout", reason: "timed out" };
  if (code in CONNECT_CODES) return { kind: "connect", reason: CONNECT_CODES[code]! };
  if (code in RESET_CODES) return { kind: "reset", reason: RESET_CODES[code]! };
  if (code === "Malformed_HTTP_Response" || code.startsWith("Invalid")) return { kind: "protocol", reason: "malformed response" };
  return { kind: "protocol", reason: code || err?.message || String(error) };
}
