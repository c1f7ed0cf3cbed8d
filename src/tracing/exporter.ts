/**
 * Sends finished spans to an OTLP/HTTP collector in batches, off the request path: a request only pushes its spans
 * onto a bounded queue; a timer (or a full batch) sends them later, one export at a time. When the collector is slow
 * or down the queue fills and further spans are dropped and counted, never held: lb never waits for the collector.
 */
import { type Resource, encodeSpans } from "./otlp.ts";
import { encodeSpansProtobuf } from "./protobuf.ts";
import type { SpanRecord } from "./spans.ts";

/** What became of spans: exported, or dropped because the queue was full or the export failed. */
export type SpanOutcome = "exported" | "queue-full" | "export-failed";

export interface ExporterSettings {
  /** The collector's traces URL (…/v1/traces). */
  url: string;
  protocol: "http/protobuf" | "http/json";
  /** Sent with every export (OTEL_EXPORTER_OTLP_HEADERS: often a token; never logged). */
  headers: Array<[string, string]>;
  resource: Resource;
  /** Counts spans by outcome (lb_trace_spans_*_total). */
  count(outcome: SpanOutcome, spans: number): void;
  /** Says why an export failed (the caller throttles it). */
  warn(reason: string): void;
}

/** An answer's body up to this size is read (its connection is then reused); a larger or unsized one is dropped. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * lb needs only the status: a body of known small size is read to free the connection for the next export; any
 * other is cancelled unread, so a collector that answers without end costs one socket, not lb's memory.
 */
async function discardBody(response: Response): Promise<void> {
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  if (length <= MAX_ANSWER_BYTES) await response.arrayBuffer().catch(() => {});
  else await response.body?.cancel().catch(() => {});
}

/** The OpenTelemetry SDK's batch defaults (OTEL_BSP_*), with a shorter delay: a trace shows up within a second. */
export const MAX_QUEUE = 2048;
export const MAX_BATCH = 512;
const DELAY_MS = 1000;
/** OTEL_EXPORTER_OTLP_TIMEOUT's default. */
const EXPORT_TIMEOUT_MS = 10_000;

export class SpanExporter {
  #queue: SpanRecord[] = [];
  #timer: Timer | undefined;
  #sending: Promise<void> | null = null;

  constructor(private readonly settings: ExporterSettings) {}

  readonly add = (span: SpanRecord): void => {
    if (this.#queue.length >= MAX_QUEUE) return this.settings.count("queue-full", 1);
    this.#queue.push(span);
    if (this.#sending) return; // the export under way sends the rest when it is done
    if (this.#queue.length >= MAX_BATCH) this.#schedule(0);
    else this.#timer ??= this.#schedule(DELAY_MS);
  };

  #schedule(delayMs: number): Timer {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#sendAll(), delayMs);
    this.#timer.unref(); // a pending export never keeps lb alive
    return this.#timer;
  }

  /** Sends batches until the queue is empty; one export at a time. */
  #sendAll(): Promise<void> {
    this.#timer = undefined;
    return (this.#sending ??= (async () => {
      while (this.#queue.length) await this.#send(this.#queue.splice(0, MAX_BATCH));
      this.#sending = null;
    })());
  }

  async #send(batch: SpanRecord[]): Promise<void> {
    const { url, headers, resource, count, warn } = this.settings;
    const json = this.settings.protocol === "http/json";
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: [...headers, ["content-type", json ? "application/json" : "application/x-protobuf"]],
        body: json ? encodeSpans(batch, resource) : encodeSpansProtobuf(batch, resource),
        signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS),
      });
      await discardBody(response);
      if (response.ok) return count("exported", batch.length);
      warn(`the collector answered ${response.status}`);
    } catch (error) {
      warn((error as Error).message);
    }
    count("export-failed", batch.length);
  }

  /** Sends what is queued (at stop), giving up after `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    clearTimeout(this.#timer);
    await Promise.race([this.#sendAll(), Bun.sleep(timeoutMs)]);
  }
}
