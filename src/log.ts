/**
 * Two kinds of log: lifecycle messages through consola (startup, health changes, shutdown) on stderr, and one access
 * line per request on stdout through a cheap buffered writer (consola's reporter costs ~15 µs a line, too much for the
 * hot path).
 */
import { type ConsolaInstance, type LogObject, createConsola } from "consola";
import { format } from "node:util";
import type { LogFormat, LogLevel } from "./config/settings.ts";

const CONSOLA_LEVELS: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4 };
const LEVEL_NAMES: Record<number, string> = { 0: "error", 1: "warn", 2: "info", 3: "info", 4: "debug", 5: "trace" };

export type Logger = ConsolaInstance;

export function consolaLevel(level: LogLevel): number {
  return CONSOLA_LEVELS[level];
}

export function createLogger(level: LogLevel, logFormat: LogFormat): Logger {
  const colors = Boolean(process.stderr.isTTY) && !process.env.NO_COLOR;
  const line = logFormat === "json" ? jsonLine : (entry: LogObject) => prettyLine(entry, colors);
  return createConsola({
    level: CONSOLA_LEVELS[level],
    throttle: 0,
    reporters: [{ log: (entry) => process.stderr.write(line(entry)) }],
  });
}

const LEVEL_COLORS: Record<string, string> = { error: "31", warn: "33", info: "36", debug: "90" };

/** One compact line a person can scan: time, level, message (consola's default boxes a warning in blank lines). */
function prettyLine(entry: LogObject, colors: boolean): string {
  const level = LEVEL_NAMES[entry.level] ?? entry.type;
  const label = level.toUpperCase().padEnd(5);
  const shown = colors ? `\x1b[${LEVEL_COLORS[level] ?? "0"}m${label}\x1b[0m` : label;
  return `${entry.date.toISOString()} ${shown} ${format(...entry.args)}\n`;
}

function jsonLine(entry: LogObject): string {
  const [first, ...rest] = entry.args;
  const fields = rest.length === 1 && typeof rest[0] === "object" ? rest[0] : undefined;
  const msg = fields ? format(first) : format(first, ...rest);
  return `${JSON.stringify({ time: entry.date.toISOString(), level: LEVEL_NAMES[entry.level] ?? entry.type, msg, ...fields })}\n`;
}

export interface AccessEntry {
  client: string;
  method: string;
  path: string;
  status: number;
  /** The backend that answered (or was last tried); "-" when none was. */
  backend: string;
  attempts: number;
  /** Milliseconds until the answering backend's response headers arrived. */
  upstreamMs: number;
  /** Milliseconds from the request's arrival until the last response byte. */
  totalMs: number;
  bytes: number;
}

export interface Sink {
  write(text: string): unknown;
  flush(): unknown;
}

const FLUSH_AFTER_MS = 100;

/** Formats access lines and batches them: one write per ~100 ms however many requests end in between. */
export class AccessLog {
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly logFormat: LogFormat,
    private readonly sink: Sink = Bun.stdout.writer(),
  ) {}

  write(entry: AccessEntry): void {
    this.sink.write(this.logFormat === "json" ? accessJson(entry) : accessPretty(entry));
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.sink.flush();
  }
}

function accessJson(e: AccessEntry): string {
  return `${JSON.stringify({
    time: new Date().toISOString(),
    client: e.client,
    method: e.method,
    path: e.path,
    status: e.status,
    backend: e.backend,
    attempts: e.attempts,
    upstream_ms: round(e.upstreamMs),
    total_ms: round(e.totalMs),
    bytes: e.bytes,
  })}\n`;
}

function accessPretty(e: AccessEntry): string {
  return `${new Date().toISOString()} ${e.client} ${e.method} ${e.path} ${e.status} → ${e.backend} attempts=${e.attempts} upstream=${round(e.upstreamMs)}ms total=${round(e.totalMs)}ms bytes=${e.bytes}\n`;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
