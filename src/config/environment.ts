/**
 * Every setting from the environment, named after its flag: LB_PORT, LB_HEALTH_PATH, LB_ADMIN_TOKEN (the way to give
 * a secret without it showing in `ps`). Precedence, as Traefik documents it: flags, then the environment, then the
 * config file.
 */
import type { Layer } from "./load.ts";
import { SETTINGS, type Setting } from "./settings.ts";
import { TRACES_PATH } from "./values-tracing.ts";

export function envName(setting: Pick<Setting, "name">): string {
  return `LB_${setting.name.toUpperCase().replaceAll("-", "_")}`;
}

/** The settings `vars` (process.env) sets. An empty variable counts as unset, as shells and Compose files leave them. */
export function environmentLayer(vars: Record<string, string | undefined>): Layer {
  const values: Record<string, unknown> = {};
  const names = new Map<string, string>();
  for (const setting of SETTINGS) {
    const name = envName(setting);
    const raw = vars[name];
    if (raw === undefined || raw === "") continue;
    names.set(setting.name, name);
    // A repeatable setting (--health-header) takes one value per line; backends are comma-separated as on a flag.
    values[setting.name] = setting.repeatable ? raw.split("\n").filter((line) => line.trim() !== "") : raw;
  }
  return { source: "environment", values, placeOf: ([key]) => `environment ${names.get(String(key)) ?? key}` };
}

/**
 * OpenTelemetry's standard variables (OTEL_EXPORTER_OTLP_ENDPOINT and friends), as the tracing settings: lb fits a
 * deployment that sets them for every service. LB_* variables and flags override them; OTEL_SDK_DISABLED=true makes
 * lb ignore them all (lb's own --otlp-endpoint still turns tracing on).
 */
export function openTelemetryLayer(vars: Record<string, string | undefined>): Layer {
  const values: Record<string, unknown> = {};
  const names = new Map<string, string>();
  const take = (setting: string, name: string, value: unknown) => {
    values[setting] = value;
    names.set(setting, name);
  };
  const given = (name: string) => (vars[name]?.trim() ? name : undefined);
  if (vars.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return { source: "environment", values };
  const traces = given("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const base = given("OTEL_EXPORTER_OTLP_ENDPOINT");
  // The general endpoint is a base the signal's path is added to; the traces one is used as it is.
  if (traces) take("otlp-endpoint", traces, vars[traces]!.trim());
  else if (base) take("otlp-endpoint", base, vars[base]!.trim().replace(/\/*$/, TRACES_PATH));
  const protocol = given("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? given("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol) take("otlp-protocol", protocol, vars[protocol]!.trim());
  const headers = given("OTEL_EXPORTER_OTLP_TRACES_HEADERS") ?? given("OTEL_EXPORTER_OTLP_HEADERS");
  if (headers) take("otlp-header", headers, vars[headers]!.split(",").map(otlpHeader));
  const sampler = given("OTEL_TRACES_SAMPLER");
  const arg = given("OTEL_TRACES_SAMPLER_ARG");
  // With its argument, a refusal names both variables: the ratio may be the one at fault.
  if (sampler) take("trace-sample", arg ? `${sampler} with ${arg}` : sampler, `${vars[sampler]!.trim()}${arg ? `:${vars[arg]!.trim()}` : ""}`);
  const service = given("OTEL_SERVICE_NAME");
  if (service) take("trace-service-name", service, vars[service]!.trim());
  return { source: "environment", values, placeOf: ([key]) => `environment ${names.get(String(key)) ?? key}` };
}

/** OTEL's "key=value" (URL-encoded) as "Name: value"; anything else as written, for the header parser to refuse. */
function otlpHeader(entry: string): string {
  const equals = entry.indexOf("=");
  if (equals < 1) return entry.trim();
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text.trim());
    } catch {
      return text.trim();
    }
  };
  return `${decode(entry.slice(0, equals))}: ${decode(entry.slice(equals + 1))}`;
}

/** Both, in order of precedence, lowest first: OpenTelemetry's variables, then lb's own. */
export function environmentLayers(vars: Record<string, string | undefined>): Layer[] {
  return [openTelemetryLayer(vars), environmentLayer(vars)];
}
