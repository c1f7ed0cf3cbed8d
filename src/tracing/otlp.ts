/**
 * Spans as an OTLP/HTTP JSON body (opentelemetry-proto's ExportTraceServiceRequest in the protobuf JSON mapping, with
 * hex trace and span ids as OTLP requires). Pure: the exporter posts what this returns.
 */
import type { AttributeValue, SpanRecord } from "./spans.ts";

/** What every span is about: service.name and the rest of the resource, and the instrumentation scope. */
export interface Resource {
  attributes: Array<[string, string]>;
  scope: { name: string; version: string };
}

/** OTLP's status codes. */
const STATUS_ERROR = 2;

/**
 * Written as text directly, not as objects for JSON.stringify: two spans a request, some twenty attributes each, made
 * about half as costly to encode. Keys are lb's own (plain ASCII); every value that came from a request is escaped.
 */
export function encodeSpans(spans: readonly SpanRecord[], resource: Resource): string {
  let out = `{"resourceSpans":[{"resource":{"attributes":${attributes(resource.attributes)}},"scopeSpans":[{"scope":${JSON.stringify(resource.scope)},"spans":[`;
  for (let i = 0; i < spans.length; i++) out += (i ? "," : "") + span(spans[i]!);
  return `${out}]}]}]}`;
}

function span(record: SpanRecord): string {
  let out = `{"traceId":"${record.traceId}","spanId":"${record.spanId}",`;
  if (record.parentSpanId) out += `"parentSpanId":"${record.parentSpanId}",`;
  out +=
    `"name":${JSON.stringify(record.name)},"kind":${record.kind},"startTimeUnixNano":"${unixNano(record.startMs)}",` +
    `"endTimeUnixNano":"${unixNano(record.endMs)}","attributes":${attributes(record.attributes)}`;
  return record.error ? `${out},"status":{"code":${STATUS_ERROR}}}` : `${out}}`;
}

function attributes(list: ReadonlyArray<readonly [string, AttributeValue]>): string {
  let out = "[";
  for (let i = 0; i < list.length; i++) {
    const [key, value] = list[i]!;
    out += `${i ? "," : ""}{"key":"${key}","value":${attributeValue(value)}}`;
  }
  return `${out}]`;
}

/** What JSON must escape; most values (ids, addresses, paths) have none, and skip JSON.stringify. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

function attributeValue(value: AttributeValue): string {
  if (typeof value === "string") return NEEDS_ESCAPE.test(value) ? `{"stringValue":${JSON.stringify(value)}}` : `{"stringValue":"${value}"}`;
  if (typeof value === "boolean") return `{"boolValue":${value}}`;
  // int64 is a string in protobuf's JSON mapping. Anything else (NaN, or undefined a type let through) is written as
  // text: one bad value must not make the collector refuse the whole batch.
  if (Number.isInteger(value)) return `{"intValue":"${value}"}`;
  return Number.isFinite(value) ? `{"doubleValue":${value}}` : `{"stringValue":"${String(value)}"}`;
}

/** Epoch milliseconds (with a fraction) as a decimal string of nanoseconds: a double cannot hold them exactly. */
export function unixNano(ms: number): string {
  const whole = Math.floor(ms);
  const nanos = Math.min(999_999, Math.floor((ms - whole) * 1e6));
  return `${whole}${String(nanos).padStart(6, "0")}`;
}
