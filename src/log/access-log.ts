/**
 * One access line per request, in the chosen format, to stdout or a file, batched: one write per ~100 ms however
 * many requests end in between. A file is reopened on SIGUSR1, so logrotate can move it away.
 */
import { closeSync, openSync, writeSync } from "node:fs";

export const ACCESS_FORMATS = ["json", "combined", "combined-time", "pretty"] as const;
export type AccessFormat = (typeof ACCESS_FORMATS)[number];

export interface AccessEntry {
  requestId: string;
  client: string;
  method: string;
  path: string;
  status: number;
  /** The backend that answered (or was last tried); "-" when none was. */
  backend: string;
  attempts: number;
  /** Milliseconds until the answering backend's response headers arrived. */
  upstreamMs: number;
  /** Milliseconds from the request's arrival until the last response byte was handed over. */
  totalMs: number;
  bytes: number;
  /** Request body bytes taken from the client. */
  bytesIn: number;
  /** The client came over TLS. */
  tls: boolean;
  /** The request's Host, User-Agent and Referer fields (null when absent), which some formats show. */
  host: string | null;
  userAgent: string | null;
  referer: string | null;
  /** When the request ended (Date.now()): the line's time. */
  endedAt: number;
  /** lb's server span, when the request was traced (and recorded): trace_id and span_id join logs to traces. */
  span?: { traceId: string; spanId: string };
}

/** One relayed TCP connection ([[tcp]], src/l4/), logged when it ends. */
export interface ConnectionEntry {
  /** The client's address and port. */
  client: string;
  /** The listener's address. */
  listen: string;
  /** The TLS server name the client asked for; "" when it named none or the listener does not read it. */
  sni: string;
  pool: string;
  /** The backend the bytes went to (host:port); "-" when none was reached. */
  backend: string;
  /** Bytes from the client to the backend, and back. */
  bytesIn: number;
  bytesOut: number;
  totalMs: number;
  /** How it ended: closed, idle-timeout, drained, or why lb refused it (no-sni-match, no-backend, ...). */
  end: string;
}

export interface Sink {
  write(chunk: string | Uint8Array): unknown;
  flush(): unknown;
  /** Opens the destination again (after logrotate moved it); a no-op for stdout. */
  reopen?(): void;
}

const FLUSH_AFTER_MS = 100;
/** Bytes of lines held between flushes; a flush comes early when less than LINE_ROOM is left. */
const BUFFER_BYTES = 512 * 1024;
/** More than any one line can take: Bun caps a request's line and headers at 16 KiB, and UTF-8 at 3 bytes a unit. */
const LINE_ROOM = 128 * 1024;

/**
 * Lines are written straight into one reusable byte buffer, each as one string: no string held per line until the next
 * flush, which is what made logging costly on the hot path (the GC, not the writes). A line built as one template and
 * written with one native call costs about half of writing it field by field in JavaScript (0.8 against 1.5 µs).
 */
export class LineBuffer {
  readonly bytes = Buffer.allocUnsafe(BUFFER_BYTES);
  length = 0;

  get full(): boolean {
    return this.length > BUFFER_BYTES - LINE_ROOM;
  }

  /** Appends text as UTF-8. */
  text(text: string): void {
    this.length += this.bytes.write(text, this.length);
  }

  /** The lines so far, as a copy of their own (a sink may hold them while the buffer takes the next), and empty. */
  take(): Uint8Array {
    const chunk = new Uint8Array(this.length);
    chunk.set(this.bytes.subarray(0, this.length));
    this.length = 0;
    return chunk;
  }
}

export class AccessLog {
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #lines = new LineBuffer();
  readonly #format: (entry: AccessEntry, out: LineBuffer) => void;
  readonly #json: boolean;

  constructor(
    format: AccessFormat,
    private readonly sink: Sink = Bun.stdout.writer(),
  ) {
    this.#format = FORMATTERS[format];
    this.#json = format === "json";
  }

  write(entry: AccessEntry): void {
    if (this.#lines.full) this.flush();
    this.#format(entry, this.#lines);
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  /** A TCP connection's line: JSON in the json format; in the others, one text line (no HTTP request to describe). */
  writeConnection(e: ConnectionEntry): void {
    if (this.#lines.full) this.flush();
    const totalMs = tenths(e.totalMs);
    const time = isoTime(Date.now());
    const line = this.#json
      ? JSON.stringify({
          time, kind: "tcp", client: e.client, listen: e.listen, sni: e.sni, pool: e.pool, backend: e.backend,
          bytes_in: e.bytesIn, bytes_out: e.bytesOut, total_ms: Number(totalMs), end: e.end,
        })
      : `${time} ${e.client} TCP ${e.listen} sni=${e.sni || "-"} → ${e.backend} pool=${e.pool} in=${e.bytesIn} ` +
        `out=${e.bytesOut} total=${totalMs}ms end=${e.end}`;
    this.#lines.text(`${line}\n`);
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    this.sink.write(this.#lines.take());
    this.sink.flush();
  }

  /** Lines formatted elsewhere (by a worker, see cluster/), written whole: lines from processes never interleave. */
  writeLines(lines: string | Uint8Array): void {
    this.flush();
    this.sink.write(lines);
    this.sink.flush();
  }

  reopen(): void {
    this.flush();
    this.sink.reopen?.();
  }
}

/**
 * Appends to a file (AccessLog hands it one batch of lines per flush). A failing write (disk full) or reopen
 * (directory gone, wrong owner after logrotate) is reported once and never takes lb down: lines are dropped, and a
 * failed reopen keeps the old file.
 */
export class FileSink implements Sink {
  #fd: number;
  #failing = false;

  constructor(
    private readonly path: string,
    private readonly warn: (message: string) => void,
  ) {
    this.#fd = openSync(path, "a");
  }

  write(chunk: string | Uint8Array): void {
    try {
      if (typeof chunk === "string") writeSync(this.#fd, chunk);
      else writeSync(this.#fd, chunk);
      this.#failing = false;
    } catch (error) {
      if (!this.#failing) this.warn(`access log ${this.path}: lines dropped: ${(error as Error).message}`);
      this.#failing = true;
    }
  }

  flush(): void {}

  reopen(): void {
    try {
      const next = openSync(this.path, "a");
      closeSync(this.#fd);
      this.#fd = next;
    } catch (error) {
      this.warn(`access log ${this.path} could not be reopened, still writing the old one: ${(error as Error).message}`);
    }
  }
}

/** ISO time, computed once per millisecond rather than once per line. */
let stampMs = 0;
let stampText = "";
function isoTime(ms: number): string {
  if (ms !== stampMs) {
    stampMs = ms;
    stampText = new Date(ms).toISOString();
  }
  return stampText;
}

/** JSON string syntax for text; most paths need no escaping, and skipping JSON.stringify for them is cheaper. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;
const jsonString = (text: string) => (NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`);
/**
 * Milliseconds to one decimal, as JSON prints the rounded number (3, 2.5), built from integers: printing the rounded
 * double took 0.11 µs, this 0.03.
 */
function tenths(ms: number): string {
  const count = ms > 0 ? Math.round(ms * 10) : 0;
  const tenth = count % 10;
  return tenth === 0 ? `${count / 10}` : `${(count - tenth) / 10}.${tenth}`;
}
const quoted = (text: string | null) => (text === null ? "-" : text.replace(/["\\]/g, "\\$&"));

const FORMATTERS: Record<AccessFormat, (e: AccessEntry, out: LineBuffer) => void> = {
  // The path, Host and User-Agent are the client's text, escaped; the rest are tokens lb produced or Bun validated.
  json: (e, out) =>
    out.text(
      `{"time":"${isoTime(e.endedAt)}","request_id":"${e.requestId}","client":"${e.client}","method":"${e.method}",` +
        `"path":${jsonString(e.path)},"status":${e.status},"backend":"${e.backend}","attempts":${e.attempts},` +
        `"upstream_ms":${tenths(e.upstreamMs)},"total_ms":${tenths(e.totalMs)},"bytes":${e.bytes},` +
        `"bytes_in":${e.bytesIn},"tls":${e.tls},"host":${jsonString(e.host ?? "")},` +
        `"user_agent":${jsonString(e.userAgent ?? "")}` +
        `${e.span ? `,"trace_id":"${e.span.traceId}","span_id":"${e.span.spanId}"` : ""}}\n`,
    ),
  // Apache/nginx "combined": what log analysers read.
  combined: (e, out) => out.text(`${combinedLine(e)}\n`),
  // The same, then the request's time in seconds, as nginx's $request_time (GoAccess: --log-format=COMBINED + %T).
  "combined-time": (e, out) => out.text(`${combinedLine(e)} ${(e.totalMs / 1000).toFixed(3)}\n`),
  pretty: (e, out) =>
    out.text(
      `${isoTime(e.endedAt)} ${e.client} ${e.method} ${e.path} ${e.status} → ${e.backend} attempts=${e.attempts} ` +
        `upstream=${tenths(e.upstreamMs)}ms total=${tenths(e.totalMs)}ms bytes=${e.bytes} id=${e.requestId}\n`,
    ),
};

function combinedLine(e: AccessEntry): string {
  return (
    `${e.client} - - [${clfTime(e.endedAt)}] "${e.method} ${quoted(e.path)} HTTP/1.1" ${e.status} ${e.bytes} ` +
    `"${quoted(e.referer)}" "${quoted(e.userAgent)}"`
  );
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** Common Log Format time, in UTC: 25/Nov/2026:17:44:36 +0000. */
export function clfTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
