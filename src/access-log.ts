/**
 * One access line per request, in the chosen format, to stdout or a file, batched: one write per ~100 ms however
 * many requests end in between. A file is reopened on SIGUSR1, so logrotate can move it away.
 */
import { closeSync, openSync, writeSync } from "node:fs";

export const ACCESS_FORMATS = ["json", "combined", "pretty"] as const;
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
  /** The request's headers, read only by formats that show some (combined: Referer, User-Agent). */
  headers: Headers;
}

export interface Sink {
  write(text: string): unknown;
  flush(): unknown;
  /** Opens the destination again (after logrotate moved it); a no-op for stdout. */
  reopen?(): void;
}

const FLUSH_AFTER_MS = 100;

export class AccessLog {
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Lines since the last flush: one write per flush costs far less than one per request. */
  #pending: string[] = [];
  readonly #format: (entry: AccessEntry) => string;

  constructor(
    format: AccessFormat,
    private readonly sink: Sink = Bun.stdout.writer(),
  ) {
    this.#format = FORMATTERS[format];
  }

  write(entry: AccessEntry): void {
    this.#pending.push(this.#format(entry));
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    this.sink.write(this.#pending.join(""));
    this.#pending = [];
    this.sink.flush();
  }

  /** Lines formatted elsewhere (by a worker, see cluster/), written whole: lines from processes never interleave. */
  writeLines(text: string): void {
    this.flush();
    this.sink.write(text);
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

  write(text: string): void {
    try {
      writeSync(this.#fd, text);
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
function now(): string {
  const ms = Date.now();
  if (ms !== stampMs) {
    stampMs = ms;
    stampText = new Date(ms).toISOString();
  }
  return stampText;
}

const round = (ms: number) => Math.round(ms * 10) / 10;
/** JSON string syntax for text; most paths need no escaping, and skipping JSON.stringify for them is measurably cheaper. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;
const jsonString = (text: string) => (NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`);
const quoted = (text: string | null) => (text === null ? "-" : text.replace(/["\\]/g, "\\$&"));

const FORMATTERS: Record<AccessFormat, (e: AccessEntry) => string> = {
  // Built by hand: the other fields are tokens lb produced or Bun validated (the method); only the path is free text.
  json: (e) =>
    `{"time":"${now()}","request_id":"${e.requestId}","client":"${e.client}","method":"${e.method}",` +
    `"path":${jsonString(e.path)},"status":${e.status},"backend":"${e.backend}","attempts":${e.attempts},` +
    `"upstream_ms":${round(e.upstreamMs)},"total_ms":${round(e.totalMs)},"bytes":${e.bytes}}\n`,
  // Apache/nginx "combined": what log analysers read.
  combined: (e) =>
    `${e.client} - - [${clfTime(Date.now())}] "${e.method} ${quoted(e.path)} HTTP/1.1" ${e.status} ${e.bytes} ` +
    `"${quoted(e.headers.get("referer"))}" "${quoted(e.headers.get("user-agent"))}"\n`,
  pretty: (e) =>
    `${now()} ${e.client} ${e.method} ${e.path} ${e.status} → ${e.backend} attempts=${e.attempts} ` +
    `upstream=${round(e.upstreamMs)}ms total=${round(e.totalMs)}ms bytes=${e.bytes} id=${e.requestId}\n`,
};

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** Common Log Format time, in UTC: 25/Nov/2026:17:44:36 +0000. */
export function clfTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
