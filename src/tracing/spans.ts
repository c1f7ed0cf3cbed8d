/**
 * The spans of one request, named and attributed per OpenTelemetry's HTTP semantic conventions: a server span for the
 * request as lb received it, a client span for each attempt on a backend (the backend's parent), and for a WebSocket
 * tunnel both last as long as it does. A trip that is not sampled still passes the trace on (flag 00) and records
 * nothing. Nothing here exists unless tracing is on: the request path only asks `trip.trace?`.
 */
import { isIP } from "node:net";
import { type RemoteParent, type Sampler, formatTraceparent, newSpanId, newTraceId, parseTraceparent, sampled } from "./context.ts";

export type AttributeValue = string | number | boolean;

/** A finished span, as the exporter sends it. Times are Unix epoch milliseconds with a fraction. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  kind: typeof SERVER | typeof CLIENT;
  startMs: number;
  endMs: number;
  attributes: Array<[string, AttributeValue]>;
  error: boolean;
}

/** OTLP's SpanKind numbers. */
export const SERVER = 2;
export const CLIENT = 3;

/** Where finished spans go (the exporter's queue). */
export type SpanSink = (span: SpanRecord) => void;

/** The client's side of a request, as a trip holds it (proxy/trip.ts). */
export interface ServerSide {
  request: { method: string; headers: Headers };
  requestId: string;
  /** The connection: its peer (TCP, or as the PROXY protocol said) and scheme. */
  client: { peer: string; proto: "http" | "https" };
  /** The real client (edge/client-address.ts). */
  source: { ip: string };
  /** The path and query as received. */
  path: string;
  /** When it arrived (performance.now()). */
  started: number;
}

/** How the request ended, for its server span. */
export interface ServerEnd {
  status: number;
  bytesIn: number;
  bytesOut: number;
  attempts: number;
  /** The backend that answered or was tried last ("" when none). */
  backend: string;
}

/** Epoch milliseconds, with the monotonic clock's fraction. */
const nowMs = () => performance.timeOrigin + performance.now();

/** Starts a trip's trace: continues an incoming traceparent, or starts a new trace; samples per `sampler`. */
export class Tracer {
  constructor(
    private readonly sampler: Sampler,
    private readonly sink: SpanSink,
  ) {}

  start(side: ServerSide): TripTrace {
    const parent = parseTraceparent(side.request.headers.get("traceparent"));
    const traceId = parent?.traceId ?? newTraceId();
    return new TripTrace(side, traceId, parent, sampled(this.sampler, traceId, parent), this.sink);
  }

  /**
   * A relayed TCP connection's span, started now; null when its trace is not sampled. A trace of its own: nothing in
   * a TCP stream carries a caller's, and nothing can carry lb's on to the backend.
   */
  connection(): ConnectionSpan | null {
    const traceId = newTraceId();
    return sampled(this.sampler, traceId, null) ? new ConnectionSpan(traceId, this.sink) : null;
  }
}

/** A [[tcp]] connection's life, from accept to both sides closed. */
export class ConnectionSpan {
  readonly spanId = newSpanId();
  readonly startMs = nowMs();

  constructor(
    readonly traceId: string,
    private readonly sink: SpanSink,
  ) {}

  /** `listen` names it; `error` is the refusal's reason, when lb refused it. */
  end(listen: string, attributes: Array<[string, AttributeValue]>, error: string): void {
    if (error) attributes.push(["error.type", error]);
    this.sink({
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: "",
      name: `TCP ${listen}`,
      kind: SERVER,
      startMs: this.startMs,
      endMs: nowMs(),
      attributes: [["network.transport", "tcp"], ...attributes],
      error: error !== "",
    });
  }
}

/** A trip's server span, and the trace it carries to the backends. */
export class TripTrace {
  readonly spanId = newSpanId();
  /** The pool the request went to, and the route that sent it there (its path prefix), once known. */
  pool = "";
  route = "";
  /** The caller's tracestate, passed on unchanged with a valid traceparent (it belongs to that trace only). */
  readonly tracestate: string | null;
  #over = false;

  constructor(
    private readonly side: ServerSide,
    readonly traceId: string,
    private readonly parent: RemoteParent | null,
    readonly sampled: boolean,
    private readonly sink: SpanSink,
  ) {
    this.tracestate = parent ? side.request.headers.get("tracestate") : null;
  }

  /** The request's arrival, in epoch milliseconds. */
  get startMs(): number {
    return performance.timeOrigin + this.side.started;
  }

  /** A client span for one attempt on `backendUrl` (`target`: the path sent); `attempt` counts from 1. */
  attempt(backendUrl: string, target: string, attempt: number): AttemptSpan {
    return new AttemptSpan(this, this.side.request.method, backendUrl, target, attempt, this.sampled ? this.sink : null);
  }

  /** The request fields a backend gets: any traceparent and tracestate replaced by this trace's, with `span` as parent. */
  fields(fields: ReadonlyArray<[string, string]>, span: AttemptSpan): Array<[string, string]> {
    const out = fields.filter(([name]) => name !== "traceparent" && name !== "tracestate");
    out.push(["traceparent", span.traceparent]);
    if (this.tracestate) out.push(["tracestate", this.tracestate]);
    return out;
  }

  /** The same for a Headers object (the WebSocket handshake). */
  setHeaders(headers: Headers, span: AttemptSpan): void {
    headers.set("traceparent", span.traceparent);
    if (this.tracestate) headers.set("tracestate", this.tracestate);
    else headers.delete("tracestate");
  }

  /** Ends the server span; returns its ids when it is recorded (for the access log), else undefined. */
  end(end: ServerEnd): { traceId: string; spanId: string } | undefined {
    if (!this.sampled || this.#over) return undefined;
    this.#over = true;
    const { request, client, source, path, requestId } = this.side;
    const { method, headers } = request;
    const query = path.indexOf("?");
    const host = headers.get("host") ?? "";
    const colon = host.lastIndexOf(":");
    const hasPort = colon > host.lastIndexOf("]");
    const attributes: Array<[string, AttributeValue]> = [
      ["http.request.method", method],
      ["url.path", query === -1 ? path : path.slice(0, query)],
      ["url.scheme", client.proto],
      ["server.address", hasPort ? host.slice(0, colon) : host],
      ["client.address", source.ip],
      ["network.peer.address", client.peer],
      ["http.response.status_code", end.status],
      ["http.request.body.size", end.bytesIn],
      ["http.response.body.size", end.bytesOut],
      ["lb.request_id", requestId],
      ["lb.attempts", end.attempts],
    ];
    if (query !== -1) attributes.push(["url.query", path.slice(query + 1)]);
    if (hasPort) attributes.push(["server.port", Number(host.slice(colon + 1))]);
    const agent = headers.get("user-agent");
    if (agent) attributes.push(["user_agent.original", agent]);
    if (this.route) attributes.push(["http.route", this.route]);
    if (this.pool) attributes.push(["lb.pool", this.pool]);
    if (end.backend) attributes.push(["lb.backend", end.backend]);
    // A server span is an error for 5xx only: a 4xx is the client's mistake, not lb's (semantic conventions).
    const error = end.status >= 500;
    if (error) attributes.push(["error.type", String(end.status)]);
    this.sink({
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.parent?.spanId ?? "",
      name: this.route ? `${method} ${this.route}` : method,
      kind: SERVER,
      startMs: this.startMs,
      endMs: nowMs(),
      attributes,
      error,
    });
    return { traceId: this.traceId, spanId: this.spanId };
  }
}

/** One attempt's client span: its id is the parent the backend sees. */
export class AttemptSpan {
  readonly spanId = newSpanId();
  readonly startMs: number;
  readonly traceparent: string;
  #errorType = "";
  #over = false;

  constructor(
    private readonly trace: TripTrace,
    private readonly method: string,
    private readonly backendUrl: string,
    private readonly target: string,
    private readonly attempt: number,
    /** Null when the trace is not sampled: nothing is recorded. */
    private readonly sink: SpanSink | null,
  ) {
    this.traceparent = formatTraceparent(trace.traceId, this.spanId, trace.sampled);
    this.startMs = sink ? nowMs() : 0;
  }

  /** The attempt failed without an answer: `kind` is the failure (connect, reset, timeout, protocol, ...). */
  failed(kind: string): void {
    this.#errorType = kind;
  }

  /** Ends the span once: `status` is the backend's (0 when it gave none), `failure` a cut answer's kind. */
  end(status: number, failure?: string): void {
    if (this.#over || !this.sink) return;
    this.#over = true;
    const { method } = this;
    const backend = backendParts(this.backendUrl);
    const errorType = failure ?? (this.#errorType || (status >= 400 ? String(status) : ""));
    const attributes: Array<[string, AttributeValue]> = [
      ["http.request.method", method],
      ["server.address", backend.host],
      ["server.port", backend.port],
      ["url.full", `${backend.origin}${this.target}`],
      ["lb.attempt", this.attempt],
    ];
    if (backend.ip) attributes.push(["network.peer.address", backend.host]);
    if (status) attributes.push(["http.response.status_code", status]);
    if (this.attempt > 1) attributes.push(["http.request.resend_count", this.attempt - 1]);
    if (errorType) attributes.push(["error.type", errorType]);
    this.sink({
      traceId: this.trace.traceId,
      spanId: this.spanId,
      parentSpanId: this.trace.spanId,
      name: method,
      kind: CLIENT,
      startMs: this.startMs,
      endMs: nowMs(),
      attributes,
      error: errorType !== "",
    });
  }
}

/** A backend URL's parts, parsed once per backend rather than once per span (DNS churn could add many: capped). */
const BACKENDS = new Map<string, { host: string; port: number; origin: string; ip: boolean }>();
const MAX_BACKENDS_KNOWN = 1000;

function backendParts(backendUrl: string): { host: string; port: number; origin: string; ip: boolean } {
  let parts = BACKENDS.get(backendUrl);
  if (parts) return parts;
  const url = new URL(backendUrl);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  parts = { host, port: Number(url.port) || (url.protocol === "https:" ? 443 : 80), origin: url.origin, ip: isIP(host) !== 0 };
  if (BACKENDS.size >= MAX_BACKENDS_KNOWN) BACKENDS.clear();
  BACKENDS.set(backendUrl, parts);
  return parts;
}
