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

export function encodeSpans(spans: readonly SpanRecord[], resource: Resource): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: resource.attributes.map(attribute) },
        scopeSpans: [{ scope: resource.scope, spans: spans.map(span) }],
      },
    ],
  });
}

function span(record: SpanRecord): Record<string, unknown> {
  return {
    traceId: record.traceId,
    spanId: record.spanId,
    ...(record.parentSpanId ? { parentSpanId: record.parentSpanId } : {}),
    name: record.name,
    kind: record.kind,
    startTimeUnixNano: unixNano(record.startMs),
    endTimeUnixNano: unixNano(record.endMs),
    attributes: record.attributes.map(attribute),
    ...(record.error ? { status: { code: STATUS_ERROR } } : {}),
  };
}

function attribute([key, value]: [string, AttributeValue]): Record<string, unknown> {
  if (typeof value === "string") return { key, value: { stringValue: value } };
  if (typeof value === "boolean") return { key, value: { boolValue: value } };
  // int64 is a string in protobuf's JSON mapping.
  return { key, value: Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value } };
}

/** Epoch milliseconds (with a fraction) as a decimal string of nanoseconds: a double cannot hold them exactly. */
export function unixNano(ms: number): string {
  const whole = Math.floor(ms);
  const nanos = Math.min(999_999, Math.floor((ms - whole) * 1e6));
  return `${whole}${String(nanos).padStart(6, "0")}`;
}
