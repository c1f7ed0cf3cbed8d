/** A real OTLP/HTTP receiver for tests: a Bun.serve that takes POST /v1/traces (protobuf or JSON) and decodes the spans. */
import { expect } from "bun:test";

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  error: boolean;
}

export interface Collector {
  url: string;
  spans: ReceivedSpan[];
  /** Each post's content type. */
  encodings: string[];
  stop(): Promise<void>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpAttribute = { key: string; value: OtlpValue };

function decode(attributes: OtlpAttribute[] = []): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of attributes) {
    out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue!));
  }
  return out;
}

/** A protobuf message's fields in order: varints as numbers, fixed-size and length-delimited ones as their bytes. */
function protoFields(bytes: Uint8Array): Array<[number, number | Uint8Array]> {
  const out: Array<[number, number | Uint8Array]> = [];
  let at = 0;
  const varint = () => {
    let n = 0;
    for (let scale = 1; ; scale *= 128) {
      const byte = bytes[at++]!;
      n += (byte & 0x7f) * scale;
      if (byte < 0x80) return n;
    }
  };
  while (at < bytes.length) {
    const tag = varint();
    const [field, wire] = [Math.floor(tag / 8), tag % 8];
    if (wire === 0) out.push([field, varint()]);
    else if (wire === 1) out.push([field, bytes.subarray(at, (at += 8))]);
    else if (wire === 2) {
      const length = varint();
      out.push([field, bytes.subarray(at, (at += length))]);
    } else if (wire === 5) out.push([field, bytes.subarray(at, (at += 4))]); // fixed32 (Span.flags, which lb leaves out)
    else throw new Error(`wire type ${wire} is not one OTLP traces use`);
  }
  return out;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const fieldsOf = (bytes: Uint8Array, wanted: number) => protoFields(bytes).filter(([field]) => field === wanted).map(([, raw]) => raw as Uint8Array);

/** KeyValue { key 1, value 2: AnyValue { string_value 1, bool_value 2, int_value 3, double_value 4 } }, as JSON has it. */
function protoAttribute(bytes: Uint8Array): OtlpAttribute {
  const [key] = fieldsOf(bytes, 1);
  const [[field, raw]] = protoFields(fieldsOf(bytes, 2)[0]!) as [[number, number | Uint8Array]];
  const value: OtlpValue =
    field === 1 ? { stringValue: text(raw as Uint8Array) } : field === 2 ? { boolValue: raw === 1 } : field === 3 ? { intValue: raw as number } : { doubleValue: view(raw as Uint8Array).getFloat64(0, true) };
  return { key: text(key!), value };
}

/** Span { trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9, status 15 { code 3 } }. */
function protoSpan(bytes: Uint8Array): Record<string, unknown> {
  const span: Record<string, unknown> = { attributes: [] };
  const hex = (raw: Uint8Array) => Buffer.from(raw).toString("hex");
  for (const [field, raw] of protoFields(bytes)) {
    const b = raw as Uint8Array;
    if (field === 1) span.traceId = hex(b);
    else if (field === 2) span.spanId = hex(b);
    else if (field === 4) span.parentSpanId = hex(b);
    else if (field === 5) span.name = text(b);
    else if (field === 6) span.kind = raw;
    else if (field === 7) span.startTimeUnixNano = String(view(b).getBigUint64(0, true));
    else if (field === 8) span.endTimeUnixNano = String(view(b).getBigUint64(0, true));
    else if (field === 9) (span.attributes as OtlpAttribute[]).push(protoAttribute(b));
    else if (field === 15) span.status = { code: protoFields(b).find(([f]) => f === 3)?.[1] };
  }
  return span;
}

/** ExportTraceServiceRequest { resource_spans 1: { resource 1 { attributes 1 }, scope_spans 2 { spans 2 } } }. */
function protoRequest(bytes: Uint8Array): OtlpRequest {
  return {
    resourceSpans: fieldsOf(bytes, 1).map((resourceSpans) => ({
      resource: { attributes: fieldsOf(fieldsOf(resourceSpans, 1)[0]!, 1).map(protoAttribute) },
      scopeSpans: fieldsOf(resourceSpans, 2).map((scopeSpans) => ({ spans: fieldsOf(scopeSpans, 2).map(protoSpan) })),
    })),
  };
}

type OtlpRequest = {
  resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] }; scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }>;
};

/** Takes OTLP/HTTP in both encodings, as the OpenTelemetry Collector does. */
export function startCollector(): Collector {
  const spans: ReceivedSpan[] = [];
  const encodings: string[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    development: false,
    async fetch(request) {
      if (request.method !== "POST" || new URL(request.url).pathname !== "/v1/traces") return new Response("not here", { status: 404 });
      const type = request.headers.get("content-type")!;
      expect(["application/json", "application/x-protobuf"]).toContain(type);
      encodings.push(type);
      const json = type === "application/json";
      const body = json ? ((await request.json()) as OtlpRequest) : protoRequest(new Uint8Array(await request.arrayBuffer()));
      for (const { resource, scopeSpans } of body.resourceSpans) {
        const service = String(decode(resource.attributes)["service.name"]);
        for (const span of scopeSpans.flatMap((scope) => scope.spans)) {
          spans.push({
            service,
            traceId: span.traceId as string,
            spanId: span.spanId as string,
            parentSpanId: (span.parentSpanId as string | undefined) ?? "",
            name: span.name as string,
            kind: span.kind as number,
            startNs: BigInt(span.startTimeUnixNano as string),
            endNs: BigInt(span.endTimeUnixNano as string),
            attributes: decode(span.attributes as OtlpAttribute[]),
            error: (span.status as { code?: number } | undefined)?.code === 2,
          });
        }
      }
      return json ? Response.json({}) : new Response(new Uint8Array(), { headers: { "content-type": "application/x-protobuf" } });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, spans, encodings, stop: () => server.stop(true) };
}
