/**
 * The kinds of value a setting takes (a duration, a port, a status list, backends), each parser defined together with
 * the JSON Schema of what it accepts: `lb schema` is built from the same definitions the config is parsed with.
 */
import { type BackendSpec, type SpecCheck, WEIGHT_PROBLEM, checkBackendUrl, hostInUrl, parseWeight } from "./backend-url.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { type HashKey, parseHashKey } from "./hash-key.ts";
import type { AdminAddress, SniCert, StatusRanges } from "./types.ts";
import { availableParallelism } from "node:os";

/**
 * A value parsed from text (command line) or from a config file (already typed by TOML/YAML/JSON). A list setting
 * may report one problem per item, each starting with its index ("[2]: ...").
 */
export type Parsed<T> = { value: T } | { error: string | string[] };

/** A JSON Schema fragment describing what a setting accepts in a config file (for editors; see schema.ts). */
export type JsonSchema = Record<string, unknown>;

/**
 * A parser that carries the schema of what it accepts and, where the parsed value is not what a person writes, how to
 * write it again (GET /api/config shows "200-399", not [[200, 399]]).
 */
export type ValueParser<T> = ((value: unknown) => Parsed<T>) & {
  readonly schema: JsonSchema;
  // A method: a parser of a narrower type (one of "json", "pretty") serves a setting that may also hold "".
  write?(value: T): unknown;
};

/** T comes from the declared type of what it makes (each parser below says what it gives), not from its returns. */
export function described<T>(parse: (value: unknown) => Parsed<NoInfer<T>>, schema: JsonSchema, write?: (value: NoInfer<T>) => unknown): ValueParser<T> {
  return Object.assign(parse, write ? { schema, write } : { schema });
}

export function duration(min: number, max = Infinity): ValueParser<number> {
  return described(
    (value) => {
      const ms = typeof value === "string" || typeof value === "number" ? parseDuration(value) : null;
      if (ms === null) return { error: `"${value}" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds` };
      if (ms < min) return { error: `${formatDuration(ms)} is too short; the least is ${formatDuration(min)}` };
      if (ms > max) return { error: `${formatDuration(ms)} is too long; the most is ${formatDuration(max)}` };
      return { value: ms };
    },
    {
      anyOf: [
        { type: "string", pattern: "^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*)+$|^\\s*\\d+(\\.\\d+)?\\s*$" },
        { type: "number", minimum: 0 },
      ],
    },
    formatDuration,
  );
}

export function integer(min: number, max: number, what: string): ValueParser<number> {
  return described(
    (value) => {
      const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
      if (!Number.isInteger(n) || n < min || n > max) return { error: `"${value}" is not ${what} (a whole number from ${min} to ${max})` };
      return { value: n };
    },
    { anyOf: [{ type: "integer", minimum: min, maximum: max }, { type: "string", pattern: "^\\d+$" }] },
  );
}

export function oneOf<T extends string>(options: readonly T[]): ValueParser<T> {
  return described(
    (value) => (options.includes(value as T) ? { value: value as T } : { error: `"${value}" is not one of ${options.join(", ")}` }),
    { enum: [...options] },
  );
}

/** Text that must not be empty, with its own further check. */
export function text(check: (s: string) => string | null): ValueParser<string> {
  return described(
    (value) => {
      if (typeof value !== "string" || value === "") return { error: "needs a value" };
      const problem = check(value);
      return problem ? { error: problem } : { value };
    },
    { type: "string", minLength: 1 },
  );
}

/** Text that may be empty (the setting is then off); a non-empty one gets the check. */
export function optionalText(check: (s: string) => string | null): ValueParser<string> {
  return described(
    (value) => {
      if (typeof value !== "string") return { error: "must be text" };
      const problem = value === "" ? null : check(value);
      return problem ? { error: problem } : { value };
    },
    { type: "string" },
  );
}

export const boolean: ValueParser<boolean> = described(
  (value) => {
    if (typeof value === "boolean") return { value };
    if (value === "true" || value === "false") return { value: value === "true" };
    return { error: `"${value}" is not true or false` };
  },
  { type: "boolean" },
);

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** A size in bytes: a number, or text like 512k, 10mb, 1g (binary units); 0 means no limit. */
export const byteSize: ValueParser<number> = described(
  (value) => {
    const match = typeof value === "number" ? [String(value), String(value), ""] : typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value) : null;
    const unit = SIZE_UNITS[(match?.[2] ?? "").toLowerCase()];
    if (!match || unit === undefined) return { error: `"${value}" is not a size; write 512k, 10mb, 1g or a number of bytes` };
    return { value: Math.round(Number(match[1]) * unit) };
  },
  { anyOf: [{ type: "integer", minimum: 0 }, { type: "string", pattern: "^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][bB]?|[bB])?\\s*$" }] },
  (bytes) => {
    const unit = (["gb", "mb", "kb"] as const).find((name) => bytes >= SIZE_UNITS[name]! && bytes % SIZE_UNITS[name]! === 0);
    return unit ? `${bytes / SIZE_UNITS[unit]!}${unit}` : bytes;
  },
);

const workerNumber = integer(1, 64, "a worker count");

/** "auto" (one per CPU) or a number of worker processes. */
export const workerCount: ValueParser<number> = described(
  (value) => {
    if (value === "auto") return { value: availableParallelism() };
    const parsed = workerNumber(value);
    return "error" in parsed ? { error: `"${value}" is not a worker count; write auto or a whole number from 1 to 64` } : parsed;
  },
  { anyOf: [{ const: "auto" }, { type: "integer", minimum: 1, maximum: 64 }, { type: "string", pattern: "^\\d+$" }] },
);

const percentNumber = integer(0, 100, "a percentage");

/** 0 to 100, with or without "%". */
export const percent: ValueParser<number> = described(
  (value) => {
    const parsed = percentNumber(typeof value === "string" ? value.trim().replace(/%$/, "") : value);
    return "error" in parsed ? { error: `"${value}" is not a percentage (0 to 100)` } : parsed;
  },
  { anyOf: [{ type: "integer", minimum: 0, maximum: 100 }, { type: "string", pattern: "^\\d{1,3}%?$" }] },
);

/** "200", "200-399" or a comma-separated mix: the statuses a health check accepts. */
export const statusRanges: ValueParser<StatusRanges> = described(
  (value) => {
    const written = typeof value === "number" ? String(value) : value;
    const items = Array.isArray(written) ? written.map(String) : typeof written === "string" ? written.split(",") : null;
    const ranges: StatusRanges = [];
    for (const item of items ?? [""]) {
      const match = /^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$/.exec(item);
      const [low, high] = match ? [Number(match[1]), Number(match[2] ?? match[1])] : [0, -1];
      if (low > high) return { error: `"${value}" is not a status list; write 200, 200-399 or 200,204,301-302` };
      ranges.push([low, high]);
    }
    return { value: ranges };
  },
  { anyOf: [{ type: "integer" }, { type: "string" }, { type: "array", items: { anyOf: [{ type: "integer" }, { type: "string" }] } }] },
  (ranges) => ranges.map(([low, high]) => (low === high ? String(low) : `${low}-${high}`)).join(","),
);

/** A header lb cannot read, as its error shows it: the name only, since the value is often a token. */
function headerShown(entry: unknown): string {
  const text = String(entry);
  const separator = text.search(/[=:\s]/);
  return separator < 0 ? text : `${text.slice(0, separator + 1)}…`;
}

/** Extra request headers: "Name: value" (repeatable on the command line), a list of those, or a table. */
export const headerList: ValueParser<Array<[string, string]>> = described(
  (value) => {
    const entries: unknown[] = Array.isArray(value)
      ? value
      : typeof value === "object" && value !== null
        ? Object.entries(value).map(([name, v]) => `${name}: ${v}`)
        : [value];
    const headers: Array<[string, string]> = [];
    for (const entry of entries) {
      const match = typeof entry === "string" ? /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(entry.trim()) : null;
      if (!match) return { error: `"${headerShown(entry)}" is not a header; write "Name: value"` };
      headers.push([match[1]!, match[2]!]);
    }
    return { value: headers };
  },
  { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }, { type: "object", additionalProperties: { type: "string" } }] },
);

/** A token with no blank around it: a blank one would protect nothing, and no HTTP client sends the spaces. */
export const adminToken: ValueParser<string> = described(
  (value) => {
    if (typeof value !== "string") return { error: "must be text" };
    const problem = tokenProblem(value);
    return problem ? { error: problem } : { value };
  },
  { type: "string", pattern: "^\\S(?:.*\\S)?$" },
);

function tokenProblem(token: string): string | null {
  if (token.trim() === "") return "is empty; give a long random token (openssl rand -hex 16), or leave it out";
  if (token.trim() !== token) return "begins or ends with blank space; remove it (clients do not send it)";
  return null;
}

/** `host:port`, `[::1]:port`, or `off`. */
export const adminAddress: ValueParser<AdminAddress> = described(
  (value) => {
    if (value === "off" || value === false) return { value: null };
    const match = typeof value === "string" ? /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim()) : null;
    const port = Number(match?.[3]);
    if (!match || port > 65535) return { error: `"${value}" is not an address; write 127.0.0.1:7019 (or off)` };
    return { value: { host: match[1] ?? match[2]!, port } };
  },
  { anyOf: [{ type: "string" }, { const: false }] },
  (address) => (address ? `${hostInUrl(address.host)}:${address.port}` : "off"),
);

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** `ip`, `path`, `header:NAME` or `cookie:NAME`: what the hash policy keys a request on. */
export const hashKey: ValueParser<HashKey> = described(
  (value) => {
    const key = typeof value === "string" ? parseHashKey(value) : null;
    return key ? { value: key } : { error: `"${value}" is not a hash key; write ip, path, header:NAME or cookie:NAME` };
  },
  { type: "string", pattern: "^(ip|path|header:.+|cookie:.+)$" },
  (key) => ("name" in key ? `${key.kind}:${key.name}` : key.kind),
);

/** `name=cert.pem,key.pem` (command line, repeatable) or tables `{ server-name, cert, key }` (config file). */
export const sniList: ValueParser<SniCert[]> = described(
  (value) => {
    const items = Array.isArray(value) ? value : [value];
    const certs: SniCert[] = [];
    const problems: string[] = [];
    items.forEach((item, i) => {
      const fromText = typeof item === "string" ? /^([A-Za-z0-9*.-]+)=([^,]+),(.+)$/.exec(item) : null;
      const table = typeof item === "object" && item !== null ? (item as Record<string, unknown>) : null;
      const entry = fromText
        ? { serverName: fromText[1]!, cert: fromText[2]!, key: fromText[3]! }
        : table && typeof table["server-name"] === "string" && typeof table.cert === "string" && typeof table.key === "string"
          ? { serverName: table["server-name"], cert: table.cert, key: table.key }
          : null;
      if (entry) certs.push(entry);
      else problems.push(`[${i}]: write server.name=cert.pem,key.pem (or a table with server-name, cert and key)`);
    });
    return problems.length ? { error: problems } : { value: certs };
  },
  {
    anyOf: [
      { type: "string" },
      {
        type: "array",
        items: {
          anyOf: [
            { type: "string" },
            {
              type: "object",
              properties: { "server-name": { type: "string" }, cert: { type: "string" }, key: { type: "string" } },
              required: ["server-name", "cert", "key"],
              additionalProperties: false,
            },
          ],
        },
      },
    ],
  },
);

/**
 * Backends arrive as a list (config file: URLs or tables with url and weight), or as comma-separated text
 * (`--backends a,b`).
 */
export const backendList: ValueParser<BackendSpec[]> = described(
  (value) => {
    const items = typeof value === "string" ? value.split(",").filter((s) => s.trim() !== "") : value;
    if (!Array.isArray(items)) return { error: "must be a list of URLs" };
    const specs: BackendSpec[] = [];
    const problems: string[] = [];
    items.forEach((item, i) => {
      const checked = checkBackendItem(item);
      if ("error" in checked) problems.push(`[${i}]${checked.error}`);
      else if (specs.some((s) => s.url === checked.spec.url)) problems.push(`[${i}]: ${checked.spec.url} is listed twice`);
      else specs.push(checked.spec);
    });
    return problems.length ? { error: problems } : { value: specs };
  },
  {
    anyOf: [
      { type: "string" },
      {
        type: "array",
        items: {
          anyOf: [
            { type: "string", description: "http://host:port, optionally #weight=N" },
            {
              type: "object",
              properties: {
                url: { type: "string" },
                weight: { type: "integer", minimum: 1, maximum: 1000 },
                resolve: { type: "boolean", description: "re-resolve the host name: one backend per address" },
              },
              required: ["url"],
              additionalProperties: false,
            },
          ],
        },
      },
    ],
  },
);

/** One entry of the backends list: a URL, or a table whose problems name their field (`[2].url: ...`). */
function checkBackendItem(item: unknown): SpecCheck {
  if (typeof item === "string") {
    const checked = checkBackendUrl(item);
    return "error" in checked ? { error: `: ${checked.error}` } : checked;
  }
  if (typeof item !== "object" || item === null || Array.isArray(item)) return { error: ": must be a URL, or a table with url (and weight)" };
  const { url, weight, resolve, ...rest } = item as { url?: unknown; weight?: unknown; resolve?: unknown };
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) return { error: `.${unknown}: not a backend setting; known: url, weight, resolve` };
  if (typeof url !== "string") return { error: ".url: missing; write url = \"http://10.0.0.5:8080\"" };
  if (resolve !== undefined && typeof resolve !== "boolean") return { error: ".resolve: must be true or false" };
  const checked = checkBackendUrl(url, resolve === undefined ? {} : { resolve });
  if ("error" in checked) return { error: `.url: ${checked.error}` };
  const parsedWeight = parseWeight(weight ?? checked.spec.weight);
  return parsedWeight === null ? { error: `.weight: ${WEIGHT_PROBLEM}` } : { spec: { ...checked.spec, weight: parsedWeight } };
}

/** A DNS name a public CA can issue for: letters, digits and hyphens in dot-separated labels, at least two labels. */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Names for --acme (repeatable, or a list), or "routes" for every exact route host; lower-cased. */
export const acmeNameList: ValueParser<string[]> = described(
  (value) => {
    const items = Array.isArray(value) ? value : typeof value === "string" ? value.split(",").filter((s) => s.trim() !== "") : null;
    if (!items) return { error: 'must be a list of names, or "routes"' };
    const names: string[] = [];
    const problems: string[] = [];
    items.forEach((item, i) => {
      const name = typeof item === "string" ? item.trim().toLowerCase() : "";
      const problem = acmeNameProblem(name, item);
      if (problem) problems.push(`[${i}]: ${problem}`);
      else if (!names.includes(name)) names.push(name);
    });
    return problems.length ? { error: problems } : { value: names };
  },
  { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
);

function acmeNameProblem(name: string, written: unknown): string | null {
  if (name === "routes") return null;
  if (name.includes("*")) return `"${written}": wildcard certificates need the DNS-01 challenge, which lb does not do; list each name`;
  if (/^[\d.]+$|:/.test(name)) return `"${written}": certificates from ACME are for DNS names, not IP addresses`;
  if (!DNS_NAME.test(name)) return `"${written}" is not a DNS name such as example.com (or "routes")`;
  return null;
}

/** Shorthands --acme-ca accepts for well-known ACME directories. */
export const ACME_DIRECTORIES: Readonly<Record<string, string>> = {
  letsencrypt: "https://acme-v02.api.letsencrypt.org/directory",
  "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
};

/** An ACME directory: an https:// URL (http:// only on loopback), or one of ACME_DIRECTORIES' names. */
export const acmeDirectory: ValueParser<string> = described(
  (value) => {
    if (typeof value !== "string") return { error: "must be text" };
    const known = ACME_DIRECTORIES[value.trim()];
    if (known) return { value: known };
    const url = URL.canParse(value) ? new URL(value) : null;
    const plainAllowed = url?.protocol === "http:" && isLoopback(url.hostname);
    if (!url || (url.protocol !== "https:" && !plainAllowed)) {
      return { error: `"${value}" is not an ACME directory; write an https:// URL, or ${Object.keys(ACME_DIRECTORIES).join(" or ")}` };
    }
    return { value: url.href };
  },
  { type: "string" },
);

/** An email address for the ACME account (empty: none; Let's Encrypt then cannot warn about expiry problems). */
export const emailAddress: ValueParser<string> = optionalText((s) => (/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s) ? null : `"${s}" is not an email address`));
