/** The values of the tracing settings: where spans go, and which traces lb records. */
import { type ValueParser, described } from "./values.ts";

/** OpenTelemetry's sampler names (OTEL_TRACES_SAMPLER) that lb knows. */
export const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** Which traces lb records: an OpenTelemetry sampler and its ratio (0 to 1; used by the *traceidratio ones). */
export interface TraceSample {
  sampler: SamplerName;
  ratio: number;
}

/**
 * "10%" or "10" (a percentage of new traces, a caller's decision followed: parentbased_traceidratio), or an OpenTelemetry
 * sampler name, with its ratio after a colon for the ratio ones ("traceidratio:0.1", as OTEL_TRACES_SAMPLER_ARG).
 */
export const traceSample: ValueParser<TraceSample> = described(
  (value) => {
    const written = typeof value === "number" ? String(value) : typeof value === "string" ? value.trim() : "";
    const percentage = /^(\d+(?:\.\d+)?)%?$/.exec(written);
    if (percentage) {
      const share = Number(percentage[1]);
      return share <= 100 ? { value: { sampler: "parentbased_traceidratio", ratio: share / 100 } } : { error: `"${value}" is more than 100%` };
    }
    const [name, arg] = written.split(":", 2) as [string, string | undefined];
    if (!SAMPLERS.includes(name as SamplerName)) {
      return { error: `"${value}" is not a sampling rule; write a percentage (10%) or one of ${SAMPLERS.join(", ")} (traceidratio:0.1)` };
    }
    const sampler = name as SamplerName;
    if (!sampler.endsWith("traceidratio")) return { value: { sampler, ratio: sampler.endsWith("always_on") ? 1 : 0 } };
    const ratio = arg === undefined || arg.trim() === "" ? 1 : Number(arg);
    if (!(ratio >= 0 && ratio <= 1)) return { error: `"${arg}" is not a sampling ratio (0 to 1)` };
    return { value: { sampler, ratio } };
  },
  { anyOf: [{ type: "number", minimum: 0, maximum: 100 }, { type: "string" }] },
  ({ sampler, ratio }) => (sampler === "parentbased_traceidratio" ? `${+(ratio * 100).toFixed(6)}%` : sampler.endsWith("traceidratio") ? `${sampler}:${ratio}` : sampler),
);

/** How spans are encoded for the collector: protobuf (OpenTelemetry's default) or JSON. gRPC is not spoken. */
export const OTLP_PROTOCOLS = ["http/protobuf", "http/json"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

export const otlpProtocol: ValueParser<OtlpProtocol> = described(
  (value) => {
    if (OTLP_PROTOCOLS.includes(value as OtlpProtocol)) return { value: value as OtlpProtocol };
    const grpc = value === "grpc" ? "lb exports over HTTP only (point it at the collector's OTLP/HTTP port, 4318); " : "";
    return { error: `"${value}" is not an OTLP protocol lb speaks: ${grpc}write http/protobuf or http/json` };
  },
  { enum: [...OTLP_PROTOCOLS] },
);

/** The OTLP/HTTP path for traces, added to an endpoint given without a path (as OTEL_EXPORTER_OTLP_ENDPOINT is). */
export const TRACES_PATH = "/v1/traces";

/** The endpoint as lb shows it (logs, /api/config): a password in it is replaced by `***`. */
export function shownEndpoint(endpoint: string): string {
  if (!URL.canParse(endpoint)) return endpoint;
  const url = new URL(endpoint);
  if (url.password) url.password = "***";
  return url.href;
}

/** An http(s) URL of a collector; without a path it gets /v1/traces. Empty: tracing is off. */
export const otlpEndpoint: ValueParser<string> = described(
  (value) => {
    if (typeof value !== "string") return { error: "must be text" };
    if (value === "") return { value };
    const url = URL.canParse(value) ? new URL(value) : null;
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      return { error: `"${shownEndpoint(value)}" is not an http:// or https:// URL (an OTLP/HTTP collector, such as http://localhost:4318)` };
    }
    if (url.pathname === "/") url.pathname = TRACES_PATH;
    return { value: url.href };
  },
  { type: "string" },
);
