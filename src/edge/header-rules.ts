/**
 * Header rules as they run: set, add and remove on a message's fields (lower-case names, as lb carries them), with the
 * placeholders of a value filled in per request. Compiled once per config; a value without a placeholder is a string.
 */
import type { HeaderRules } from "../config/edge-values.ts";

/** What placeholders stand for in one request. */
export interface PlaceholderValues {
  clientIp: string;
  requestId: string;
  host: string;
}

type Value = string | ((values: PlaceholderValues) => string);
type Fields = Array<[string, string]>;

export class CompiledRules {
  readonly #drop: ReadonlySet<string>;
  readonly #set: ReadonlyArray<[string, Value]>;
  readonly #add: ReadonlyArray<[string, Value]>;

  constructor(rules: HeaderRules) {
    // A set replaces every field of its name: those go first, like the removed ones.
    this.#drop = new Set([...rules.remove, ...rules.set.map(([name]) => name)]);
    this.#set = rules.set.map(([name, text]) => [name, compile(text)]);
    this.#add = rules.add.map(([name, text]) => [name, compile(text)]);
  }

  /** `fields` with the rules applied (a new list when something is dropped). */
  apply(fields: Fields, values: PlaceholderValues): Fields {
    const out = this.#drop.size ? fields.filter(([name]) => !this.#drop.has(name)) : fields;
    for (const [name, value] of this.#set) out.push([name, typeof value === "string" ? value : value(values)]);
    for (const [name, value] of this.#add) out.push([name, typeof value === "string" ? value : value(values)]);
    return out;
  }
}

/** Rules that change nothing compile to null, so a pool without rules does no work per request. */
export function compileRules(rules: HeaderRules): CompiledRules | null {
  return rules.set.length || rules.add.length || rules.remove.length ? new CompiledRules(rules) : null;
}

const FILLERS: Record<string, (values: PlaceholderValues) => string> = {
  client_ip: (values) => values.clientIp,
  request_id: (values) => values.requestId,
  host: (values) => values.host,
};

/** "for {client_ip}" → a function of the request; placeholders were checked at load (config/edge-values.ts). */
function compile(text: string): Value {
  const parts = text.split(/\{(client_ip|request_id|host)\}/);
  if (parts.length === 1) return text;
  return (values) => parts.map((part, i) => (i % 2 ? FILLERS[part]!(values) : part)).join("");
}
