/** A real OTLP/HTTP receiver for tests: a Bun.serve that takes POST /v1/traces (JSON) and decodes the spans. */
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

export function startCollector(): Collector {
  const spans: ReceivedSpan[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    development: false,
    async fetch(request) {
      if (request.method !== "POST" || new URL(request.url).pathname !== "/v1/traces") return new Response("not here", { status: 404 });
      expect(request.headers.get("content-type")).toBe("application/json");
      const body = (await request.json()) as {
        resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] }; scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }>;
      };
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
      return Response.json({});
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, spans, stop: () => server.stop(true) };
}
