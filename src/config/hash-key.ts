/** `--hash-key`: what the hash policy keys a request on, as an operator writes it. */

export type HashKey = { kind: "ip" } | { kind: "path" } | { kind: "header"; name: string } | { kind: "cookie"; name: string };

/** Parses `ip`, `path`, `header:X-User` or `cookie:sid`; null when the text is none of these. */
export function parseHashKey(text: string): HashKey | null {
  if (text === "ip" || text === "path") return { kind: text };
  const match = /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(text);
  return match ? { kind: match[1] as "header" | "cookie", name: match[2]! } : null;
}
