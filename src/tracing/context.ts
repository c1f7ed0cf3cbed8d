/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) and the sampling decision, without sockets or clocks:
 * reading a `traceparent`, writing one, new ids, and whether a trace is recorded.
 */

/** What a valid incoming `traceparent` says: the trace, the caller's span, and whether the caller records it. */
export interface RemoteParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
const VERSION_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A later version may append fields after a dash; its first four are read as version 00's (the spec says so). */
const LATER_VERSION = /^([0-9a-e][0-9a-f]|f[0-9a-e])-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

/**
 * The parent a `traceparent` value names, or null when it is absent or malformed (then lb starts a new trace and
 * sends its own; a header sent twice arrives joined with ", " and is malformed too). Upper-case hex, all-zero ids and
 * version ff are invalid.
 */
export function parseTraceparent(value: string | null): RemoteParent | null {
  if (value === null) return null;
  const match = VERSION_00.exec(value) ?? (value.startsWith("00") ? null : laterVersion(value));
  if (!match || match[1] === ZERO_TRACE || match[2] === ZERO_SPAN) return null;
  return { traceId: match[1]!, spanId: match[2]!, sampled: (parseInt(match[3]!, 16) & 1) === 1 };
}

function laterVersion(value: string): string[] | null {
  const match = LATER_VERSION.exec(value);
  return match && [match[0], match[2]!, match[3]!, match[4]!];
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
}

/**
 * Random hex made 8 KiB at a time from one getRandomValues call, and handed out in slices: an id is a substring
 * (about 0.02 µs), not sixteen concatenations (0.4-0.8 µs, measured), and a call serves some 170 requests.
 */
const randomBytes = new Uint8Array(4096);
let randomText = "";
let randomAt = 0;

function randomHex(chars: number): string {
  if (randomAt + chars > randomText.length) {
    crypto.getRandomValues(randomBytes);
    randomText = Buffer.from(randomBytes.buffer).toString("hex");
    randomAt = 0;
  }
  return randomText.slice(randomAt, (randomAt += chars));
}

export const newTraceId = (): string => randomHex(32);
export const newSpanId = (): string => randomHex(16);

/** Which traces lb records: a share of new ones, and, when parent-based, whatever the caller decided for its own. */
export interface Sampler {
  /** 0 to 1. */
  ratio: number;
  /** Follow an incoming traceparent's sampled flag (OTel's parentbased_* samplers) instead of the ratio. */
  parentBased: boolean;
}

const TWO_TO_56 = 2 ** 56;

/**
 * Whether a trace is recorded. By ratio, as OpenTelemetry's TraceIdRatioBased sampler: the trace id's last 56 bits
 * against ratio × 2^56, so every service with the same ratio decides the same way for the same trace.
 */
export function sampled(sampler: Sampler, traceId: string, parent: RemoteParent | null): boolean {
  if (parent && sampler.parentBased) return parent.sampled;
  if (sampler.ratio >= 1) return true;
  if (sampler.ratio <= 0) return false;
  return parseInt(traceId.slice(18), 16) < sampler.ratio * TWO_TO_56;
}
