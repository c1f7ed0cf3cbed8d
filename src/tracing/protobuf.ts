/**
 * Spans as an OTLP/HTTP protobuf body (opentelemetry-proto's ExportTraceServiceRequest), the SDKs' default encoding.
 * Only what lb sends is written, with the proto's field numbers. One buffer: a nested message or a string is written
 * in place after a one-byte length, which is widened (the bytes moved up) when it turns out longer than 127. Pure: the
 * exporter posts what this returns.
 */
import type { Resource } from "./otlp.ts";
import type { AttributeValue, SpanRecord } from "./spans.ts";

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const STATUS_ERROR = 2;
const ENCODER = new TextEncoder();
/** A hex digit's value by its character code. */
const HEX_VALUE = new Uint8Array(128);
for (let value = 0; value < 16; value++) HEX_VALUE["0123456789abcdef".charCodeAt(value)] = value;

class Writer {
  bytes = new Uint8Array(64 * 1024);
  length = 0;

  #room(more: number): void {
    if (this.length + more <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + more));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  varint(n: number): void {
    this.#room(10);
    while (n > 0x7f) {
      this.bytes[this.length++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.bytes[this.length++] = n;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** Starts a length-delimited field: returns where its one-byte length goes, for end(). */
  begin(field: number): number {
    this.tag(field, LENGTH);
    this.#room(1);
    return this.length++;
  }

  /** Ends the field begun at `at`: its length written, widened (the content moved up) past 127 bytes. */
  end(at: number): void {
    const size = this.length - at - 1;
    if (size < 128) {
      this.bytes[at] = size;
      return;
    }
    let width = 1;
    for (let rest = size; rest > 0x7f; rest = Math.floor(rest / 128)) width++;
    this.#room(width - 1);
    this.bytes.copyWithin(at + width, at + 1, this.length);
    const end = this.length + width - 1;
    this.length = at;
    this.varint(size);
    this.length = end;
  }

  /** Text as UTF-8; ASCII (nearly all of it) byte by byte, without a TextEncoder call. */
  string(field: number, text: string): void {
    const at = this.begin(field);
    this.#room(text.length * 3);
    const { bytes } = this;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        this.length += ENCODER.encodeInto(text.slice(i), bytes.subarray(this.length)).written;
        break;
      }
      bytes[this.length++] = code;
    }
    this.end(at);
  }

  /** Hex ids (lower case, as lb makes and accepts them) as the bytes they spell. */
  hex(field: number, hex: string): void {
    this.tag(field, LENGTH);
    this.varint(hex.length / 2);
    this.#room(hex.length / 2);
    for (let i = 0; i < hex.length; i += 2) this.bytes[this.length++] = HEX_VALUE[hex.charCodeAt(i)]! * 16 + HEX_VALUE[hex.charCodeAt(i + 1)]!;
  }

  /** Eight bytes for a fixed64 or double field: the view to write them (little-endian) through. */
  fixed64(field: number): DataView {
    this.tag(field, FIXED64);
    this.#room(8);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.length, 8);
    this.length += 8;
    return view;
  }
}

export function encodeSpansProtobuf(spans: readonly SpanRecord[], resource: Resource): Uint8Array {
  const out = new Writer();
  // ExportTraceServiceRequest.resource_spans 1 → ResourceSpans { resource 1 { attributes 1 }, scope_spans 2 }
  const resourceSpans = out.begin(1);
  const resourceAt = out.begin(1);
  attributes(out, 1, resource.attributes);
  out.end(resourceAt);
  // ScopeSpans { scope 1 { name 1, version 2 }, spans 2 }
  const scopeSpans = out.begin(2);
  const scope = out.begin(1);
  out.string(1, resource.scope.name);
  out.string(2, resource.scope.version);
  out.end(scope);
  for (const record of spans) {
    const at = out.begin(2);
    span(out, record);
    out.end(at);
  }
  out.end(scopeSpans);
  out.end(resourceSpans);
  return out.bytes.subarray(0, out.length);
}

/** Span { trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9, status 15 { code 3 } }. */
function span(out: Writer, record: SpanRecord): void {
  out.hex(1, record.traceId);
  out.hex(2, record.spanId);
  if (record.parentSpanId) out.hex(4, record.parentSpanId);
  out.string(5, record.name);
  out.tag(6, VARINT);
  out.varint(record.kind);
  out.fixed64(7).setBigUint64(0, unixNano(record.startMs), true);
  out.fixed64(8).setBigUint64(0, unixNano(record.endMs), true);
  attributes(out, 9, record.attributes);
  if (record.error) {
    const status = out.begin(15);
    out.tag(3, VARINT);
    out.varint(STATUS_ERROR);
    out.end(status);
  }
}

/** KeyValue { key 1, value 2: AnyValue { string_value 1, bool_value 2, int_value 3, double_value 4 } }. */
function attributes(out: Writer, field: number, list: ReadonlyArray<readonly [string, AttributeValue]>): void {
  for (const [key, value] of list) {
    const pair = out.begin(field);
    out.string(1, key);
    const any = out.begin(2);
    anyValue(out, value);
    out.end(any);
    out.end(pair);
  }
}

function anyValue(out: Writer, value: AttributeValue): void {
  if (typeof value === "string") return out.string(1, value);
  if (typeof value === "boolean") {
    out.tag(2, VARINT);
    return out.varint(value ? 1 : 0);
  }
  // Non-negative integers as varints (lb sends no negative ones); anything else that is not a finite number as text.
  if (Number.isInteger(value) && value >= 0) {
    out.tag(3, VARINT);
    return out.varint(value);
  }
  if (!Number.isFinite(value)) return out.string(1, String(value));
  out.fixed64(4).setFloat64(0, value, true);
}

/** Epoch milliseconds (with a fraction) in nanoseconds, exactly: a double cannot hold them. */
function unixNano(ms: number): bigint {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.min(999_999, Math.floor((ms - whole) * 1e6)));
}
