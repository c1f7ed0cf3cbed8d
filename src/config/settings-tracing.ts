/** The tracing settings (OpenTelemetry): the settings table (settings.ts) lists these with its own. */
import type { Setting } from "./settings.ts";
import type { Config } from "./types.ts";
import { headerList, text } from "./values.ts";
import { OTLP_PROTOCOLS, otlpEndpoint, otlpProtocol, traceSample } from "./values-tracing.ts";

type Spec<K extends keyof Config> = Omit<Setting<K>, "name"> & { name?: string };

export const TRACING_SPECS: [Spec<"otlpEndpoint">, Spec<"otlpProtocol">, Spec<"otlpHeaders">, Spec<"traceSample">, Spec<"traceServiceName">] = [
  {
    key: "otlpEndpoint", group: "tracing", restart: true, type: "string", valueHint: "url", fallback: "",
    description: "Send traces to this OpenTelemetry collector over OTLP/HTTP (a URL without a path gets /v1/traces); tracing is off when empty (also OTEL_EXPORTER_OTLP_ENDPOINT)",
    example: "--otlp-endpoint http://localhost:4318", parse: otlpEndpoint,
  },
  {
    key: "otlpProtocol", group: "tracing", restart: true, type: "string", valueHint: OTLP_PROTOCOLS.join("|"), fallback: "http/protobuf",
    description: "How spans are encoded: protobuf (OpenTelemetry's default) or JSON (a little cheaper for lb) (also OTEL_EXPORTER_OTLP_PROTOCOL)",
    example: "--otlp-protocol http/json", parse: otlpProtocol,
  },
  {
    key: "otlpHeaders", group: "tracing", restart: true, name: "otlp-header", type: "string", valueHint: "name: value", fallback: [], repeatable: true,
    description: "Header sent with every export, often a token (LB_OTLP_HEADER or OTEL_EXPORTER_OTLP_HEADERS keep it out of ps); repeat for more",
    example: '--otlp-header "Authorization: Bearer $TOKEN"', parse: headerList,
  },
  {
    key: "traceSample", group: "tracing", restart: true, type: "string", valueHint: "percent|sampler", fallback: { sampler: "parentbased_traceidratio", ratio: 1 },
    shownDefault: "100%",
    description: "Share of new traces recorded; a caller's traceparent decides for its own trace. Or an OpenTelemetry sampler: always_on, traceidratio:0.1, ... (also OTEL_TRACES_SAMPLER)",
    example: "--trace-sample 1%", parse: traceSample,
  },
  {
    key: "traceServiceName", group: "tracing", restart: true, type: "string", valueHint: "name", fallback: "lb",
    description: "The service.name of lb's spans (also OTEL_SERVICE_NAME)", example: "--trace-service-name edge-lb", parse: text(() => null),
  },
];
