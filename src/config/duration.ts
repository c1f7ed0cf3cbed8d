/**
 * Durations as operators write them: `250ms`, `10s`, `1.5m`, `1h`, `1d`, compound as Go, Caddy and Traefik take
 * them (`1m30s`, `1h30m`), or a bare number of seconds.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BARE_SECONDS = /^\d+(?:\.\d+)?$/;
/** One `<number><unit>` piece; "ms" is tried before "m". */
const PIECE = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*/y;

/** Milliseconds for a duration, or null when the text is not one. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  const text = value.trim();
  if (BARE_SECONDS.test(text)) return Math.round(Number(text) * 1000);
  if (text === "") return null;
  let total = 0;
  PIECE.lastIndex = 0;
  while (PIECE.lastIndex < text.length) {
    const piece = PIECE.exec(text);
    if (!piece) return null;
    total += Number(piece[1]) * UNIT_MS[piece[2]!]!;
  }
  return Math.round(total);
}

/** The shortest exact spelling of a duration, for logs and messages: 1500 → "1.5s", 60000 → "1m", 5400000 → "90m". */
export function formatDuration(ms: number): string {
  if (ms >= 86_400_000 && ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 100 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
