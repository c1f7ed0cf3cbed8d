/** Trace Context parsing, the ratio sampler, and the tracing settings from flags and OpenTelemetry's variables. */
import { describe, expect, test } from "bun:test";
import { environmentLayers } from "../../src/config/environment.ts";
import { checkConfig } from "../../src/config/load.ts";
import { configView } from "../../src/config/view.ts";
import { newTraceId, parseTraceparent, sampled } from "../../src/tracing/context.ts";
import { unixNano } from "../../src/tracing/otlp.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("traceparent", () => {
  test.each([
    [`00-${TRACE}-${SPAN}-01`, { traceId: TRACE, spanId: SPAN, sampled: true }],
    [`00-${TRACE}-${SPAN}-00`, { traceId: TRACE, spanId: SPAN, sampled: false }],
    [`00-${TRACE}-${SPAN}-03`, { traceId: TRACE, spanId: SPAN, sampled: true }],
    // A later version: its first fields are read as version 00's, and fields after them are allowed.
    [`cc-${TRACE}-${SPAN}-01-what-the-future-adds`, { traceId: TRACE, spanId: SPAN, sampled: true }],
  ])("%p is read", (value, parent) => expect(parseTraceparent(value)).toEqual(parent));

  test.each([
    null,
    "",
    `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${"0".repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`, // sent twice, joined
    `00-${TRACE.slice(1)}-${SPAN}-01`,
  ])("%p is malformed", (value) => expect(parseTraceparent(value)).toBeNull());
});

describe("sampler", () => {
  test("a parent-based sampler follows the caller's flag; a ratio sampler decides by the trace id's last 56 bits alone", () => {
    const caller = { traceId: TRACE, spanId: SPAN, sampled: false };
    expect(sampled({ ratio: 1, parentBased: true }, TRACE, caller)).toBe(false);
    expect(sampled({ ratio: 0, parentBased: true }, TRACE, { ...caller, sampled: true })).toBe(true);
    expect(sampled({ ratio: 1, parentBased: false }, TRACE, caller)).toBe(true);
    expect(sampled({ ratio: 0.5, parentBased: false }, `${"f".repeat(18)}00000000000000`, null)).toBe(true);
    expect(sampled({ ratio: 0.5, parentBased: false }, `${"0".repeat(18)}80000000000000`, null)).toBe(false);
    const ids = Array.from({ length: 20_000 }, newTraceId);
    const share = ids.filter((id) => sampled({ ratio: 0.1, parentBased: true }, id, null)).length / ids.length;
    expect(share).toBeGreaterThan(0.09); // 0.1 ± 4.7 standard deviations
    expect(share).toBeLessThan(0.11);
  });

  test("span times are exact decimal nanoseconds", () => {
    expect(unixNano(1_765_000_000_123.4567)).toMatch(/^1765000000123456\d{3}$/); // a double holds about a microsecond here
    expect(unixNano(1_765_000_000_000)).toBe("1765000000000000000");
  });
});

describe("settings", () => {
  const resolve = (vars: Record<string, string>, flags: Record<string, unknown> = {}) =>
    checkConfig([{ source: "test", values: { backends: ["http://a:1"] } }, ...environmentLayers(vars), { source: "command line", values: flags }], { stdoutIsTTY: false });

  test("OpenTelemetry's variables set tracing up: the base endpoint gets /v1/traces, the traces one is used as it is", () => {
    const { config, problems } = resolve({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
      OTEL_EXPORTER_OTLP_HEADERS: "api-key=s%3Dcret,x-team = edge",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "edge",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    });
    expect(problems).toEqual([]);
    expect(config).toMatchObject({
      otlpEndpoint: "http://collector:4318/v1/traces",
      otlpProtocol: "http/json",
      otlpHeaders: [["api-key", "s=cret"], ["x-team", "edge"]],
      traceServiceName: "edge",
      traceSample: { sampler: "parentbased_traceidratio", ratio: 0.25 },
    });
    expect(configView(config)["otlp-header"]).toEqual([["api-key", "[redacted]"], ["x-team", "[redacted]"]]);
    expect(configView(config)["trace-sample"]).toBe("25%");
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/custom" }).config.otlpEndpoint).toBe("http://b:4318/custom");
    expect(resolve({ OTEL_TRACES_SAMPLER: "always_off" }).config.traceSample).toEqual({ sampler: "always_off", ratio: 0 });
  });

  test("OTEL_SDK_DISABLED=true leaves tracing off; lb's own flag still turns it on and wins over the variables", () => {
    expect(resolve({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).config.otlpEndpoint).toBe("");
    const flagged = resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_TRACES_SAMPLER: "always_on" }, { "otlp-endpoint": "https://other:443", "trace-sample": "1%" });
    expect(flagged.config).toMatchObject({ otlpEndpoint: "https://other/v1/traces", traceSample: { sampler: "parentbased_traceidratio", ratio: 0.01 } });
  });

  test("bad values are refused, each naming where it came from", () => {
    const { problems } = resolve(
      { OTEL_TRACES_SAMPLER: "jaeger_remote", OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
      { "trace-sample": "150%" },
    );
    expect(problems).toEqual([
      expect.stringMatching(/^environment OTEL_EXPORTER_OTLP_ENDPOINT: otlp-endpoint: .* is not an http:\/\/ or https:\/\/ URL/),
      expect.stringMatching(/^environment OTEL_EXPORTER_OTLP_PROTOCOL: otlp-protocol: "grpc" is not an OTLP protocol lb speaks: lb exports over HTTP only/),
      expect.stringMatching(/^environment OTEL_TRACES_SAMPLER: trace-sample: "jaeger_remote" is not a sampling rule/),
      'command line: trace-sample: "150%" is more than 100%',
    ]);
    expect(resolve({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" }).problems).toEqual([
      'environment OTEL_TRACES_SAMPLER with OTEL_TRACES_SAMPLER_ARG: trace-sample: "2" is not a sampling ratio (0 to 1)',
    ]);
  });
});
