/**
 * The kinds of value the edge policies take (src/edge/): address ranges, a rate, a rate-limit key, header rules; each
 * parser with the JSON Schema of what it accepts, as in values.ts.
 */
import { HOP_BY_HOP, isToken } from "../http/hop-by-hop.ts";
import { type Cidr, formatIp, parseCidr } from "../net/ip.ts";
import { type ValueParser, described } from "./values.ts";

/** Address ranges: a list, or comma-separated text (a flag, repeatable): "10.0.0.0/8", "2001:db8::/32", "192.0.2.7". */
export const cidrList: ValueParser<Cidr[]> = described(
  (value) => {
    const items = Array.isArray(value) ? value.flatMap((item) => (typeof item === "string" ? item.split(",") : [item])) : typeof value === "string" ? value.split(",") : null;
    if (!items) return { error: 'must be a list of address ranges, e.g. ["10.0.0.0/8", "2001:db8::/32"]' };
    const ranges: Cidr[] = [];
    const problems: string[] = [];
    items.forEach((item, i) => {
      if (typeof item === "string" && item.trim() === "") return;
      const range = typeof item === "string" ? parseCidr(item.trim()) : `"${item}" is not an address or CIDR range`;
      if (typeof range === "string") problems.push(`[${i}]: ${range}`);
      else ranges.push(range);
    });
    return problems.length ? { error: problems } : { value: ranges };
  },
  { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
  (ranges) => ranges.map(({ prefix, bits }) => `${formatIp(prefix)}/${bits}`),
);

/** `100/s`: so many requests per second, minute or hour. */
export interface Rate {
  count: number;
  periodMs: number;
}

const PERIODS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** "100/s", "20/m", "1000/h"; "" (or false) for none. */
export const rate: ValueParser<Rate | null> = described(
  (value) => {
    if (value === "" || value === false) return { value: null };
    const match = typeof value === "string" ? /^\s*(\d{1,9})\s*\/\s*([smh])\s*$/.exec(value) : null;
    const count = Number(match?.[1]);
    if (!match || count < 1) return { error: `"${value}" is not a rate; write 100/s, 20/m or 1000/h (at least 1)` };
    return { value: { count, periodMs: PERIODS[match[2]!]! } };
  },
  { anyOf: [{ type: "string", pattern: "^\\s*\\d+\\s*/\\s*[smh]\\s*$|^$" }, { const: false }] },
  (value) => (value ? `${value.count}/${Object.keys(PERIODS).find((unit) => PERIODS[unit] === value.periodMs)}` : ""),
);

/** What a rate limit counts by: the client address, a header's value or a cookie's. */
export type RateKey = { kind: "ip" } | { kind: "header"; name: string } | { kind: "cookie"; name: string };

/** `ip`, `header:NAME` or `cookie:NAME`. */
export const rateKey: ValueParser<RateKey> = described(
  (value) => {
    if (value === "ip") return { value: { kind: "ip" } };
    const match = typeof value === "string" ? /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(value) : null;
    if (!match) return { error: `"${value}" is not a rate-limit key; write ip, header:NAME or cookie:NAME` };
    const kind = match[1] as "header" | "cookie";
    return { value: { kind, name: kind === "header" ? match[2]!.toLowerCase() : match[2]! } };
  },
  { type: "string", pattern: "^(ip|header:.+|cookie:.+)$" },
  (key) => ("name" in key ? `${key.kind}:${key.name}` : key.kind),
);

/** What header rules do to a message's fields: set (replace), add (beside any there), remove. */
export interface HeaderRules {
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
}

export const NO_HEADER_RULES: HeaderRules = { set: [], add: [], remove: [] };

/** What a value may name: `{client_ip}`, `{request_id}`, `{host}`. */
export const PLACEHOLDERS = ["client_ip", "request_id", "host"] as const;
/**
 * Fields a rule may not touch: the hop-by-hop ones (they describe lb's own connections) and the framing ones (lb
 * frames each message itself); a rule naming one is refused at load.
 */
const FORBIDDEN = new Set([...HOP_BY_HOP, "content-length", "transfer-encoding"]);
const ACTIONS = ["set", "add", "remove"] as const;

/**
 * Header rules: a table `{ set = { "X-A" = "1" }, add = { ... }, remove = ["X-B"] }` in a file, or "set X-A: 1",
 * "add X-A: 1", "remove X-B" (a flag, repeatable; a list of those in a file).
 */
export const headerRules: ValueParser<HeaderRules> = described(
  (value) => {
    const rules: HeaderRules = { set: [], add: [], remove: [] };
    const problems: string[] = [];
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      for (const [action, entries] of Object.entries(value)) {
        if (!ACTIONS.includes(action as (typeof ACTIONS)[number])) problems.push(`.${action}: not a rule; write set, add or remove`);
        else if (action === "remove") {
          const names = typeof entries === "string" ? [entries] : entries;
          if (!Array.isArray(names)) problems.push('.remove: write a list of names, e.g. remove = ["X-Powered-By"]');
          else names.forEach((name, i) => addRule(rules, "remove", String(name), "", `.remove[${i}]`, problems));
        } else if (typeof entries !== "object" || entries === null || Array.isArray(entries)) {
          problems.push(`.${action}: write a table of names and values, e.g. ${action} = { "X-Frame-Options" = "DENY" }`);
        } else for (const [name, text] of Object.entries(entries)) addRule(rules, action as "set" | "add", name, String(text), `.${action}.${name}`, problems);
      }
    } else {
      const items = Array.isArray(value) ? value : [value];
      items.forEach((item, i) => {
        const match = typeof item === "string" ? /^\s*(set|add|remove)\s+([^:\s]+)\s*(?::\s?(.*))?$/.exec(item) : null;
        const at = Array.isArray(value) ? `[${i}]` : "";
        if (!match || (match[1] === "remove") !== (match[3] === undefined)) {
          problems.push(`${at}: "${item}" is not a header rule; write "set Name: value", "add Name: value" or "remove Name"`);
        } else addRule(rules, match[1] as (typeof ACTIONS)[number], match[2]!, match[3] ?? "", at, problems);
      });
    }
    return problems.length ? { error: problems } : { value: rules };
  },
  {
    anyOf: [
      { type: "string" },
      { type: "array", items: { type: "string" } },
      {
        type: "object",
        additionalProperties: false,
        properties: {
          set: { type: "object", additionalProperties: { type: "string" } },
          add: { type: "object", additionalProperties: { type: "string" } },
          remove: { type: "array", items: { type: "string" } },
        },
      },
    ],
  },
  (rules) => ({
    ...(rules.set.length && { set: Object.fromEntries(rules.set) }),
    ...(rules.add.length && { add: Object.fromEntries(rules.add) }),
    ...(rules.remove.length && { remove: rules.remove }),
  }),
);

function addRule(rules: HeaderRules, action: (typeof ACTIONS)[number], name: string, text: string, at: string, problems: string[]): void {
  const lower = name.toLowerCase();
  if (!isToken(name)) return void problems.push(`${at}: "${name}" is not a header name`);
  if (FORBIDDEN.has(lower)) return void problems.push(`${at}: ${name} is a hop-by-hop or framing header, which lb sets itself; a rule may not touch it`);
  if (action === "remove") return void rules.remove.push(lower);
  if (/[\r\n\0]/.test(text)) return void problems.push(`${at}: a header value may not hold a line break or NUL`);
  const unknown = [...text.matchAll(/\{([a-z_]+)\}/g)].map((m) => m[1]!).find((word) => !PLACEHOLDERS.includes(word as (typeof PLACEHOLDERS)[number]));
  if (unknown) return void problems.push(`${at}: {${unknown}} is not a placeholder; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}`);
  rules[action].push([lower, text]);
}
