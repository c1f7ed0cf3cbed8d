/** Tracing as a whole, when it is on: the tracer requests ask, and the exporter its spans go to. */
import type { Sampler } from "./context.ts";
import { type ExporterSettings, SpanExporter } from "./exporter.ts";
import { Tracer } from "./spans.ts";

export interface TracingSettings extends Omit<ExporterSettings, "count" | "warn"> {
  sampler: Sampler;
}

export interface Tracing {
  tracer: Tracer;
  /** Sends what is queued, for at most `timeoutMs` (at stop). */
  flush(timeoutMs: number): Promise<void>;
}

export function startTracing(settings: TracingSettings, count: ExporterSettings["count"], warn: ExporterSettings["warn"]): Tracing {
  const exporter = new SpanExporter({ ...settings, count, warn });
  return { tracer: new Tracer(settings.sampler, exporter.add), flush: (timeoutMs) => exporter.flush(timeoutMs) };
}
