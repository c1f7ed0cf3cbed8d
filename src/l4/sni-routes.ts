/**
 * Which [[tcp]] entry of a listener takes a connection, by the server name its ClientHello asked for: an exact name
 * first, then the longest wildcard (`*.example.com` takes a.example.com and a.b.example.com, not example.com, as
 * nginx's server_name and lb's route hosts), then the entry without `sni` (the listener's default). Pure.
 */

export interface SniRouted {
  /** Exact names and `*.` wildcards, lower case; absent: the listener's default. */
  sni?: readonly string[];
}

export class SniRoutes<E extends SniRouted> {
  readonly #exact = new Map<string, E>();
  /** Wildcards' suffixes (".example.com"), longest first. */
  readonly #wildcards: Array<{ suffix: string; entry: E }> = [];
  readonly #fallback: E | null;

  constructor(entries: readonly E[]) {
    for (const entry of entries) {
      for (const name of entry.sni ?? []) {
        if (name.startsWith("*.")) this.#wildcards.push({ suffix: name.slice(1), entry });
        else this.#exact.set(name, entry);
      }
    }
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
    this.#fallback = entries.find((entry) => entry.sni === undefined) ?? null;
  }

  /** Whether any entry routes by name: only then is the ClientHello read before connecting. */
  get byName(): boolean {
    return this.#exact.size > 0 || this.#wildcards.length > 0;
  }

  /** The entry for a server name (null: the client named none); null when none takes it. */
  match(serverName: string | null): E | null {
    if (serverName !== null) {
      const exact = this.#exact.get(serverName);
      if (exact) return exact;
      for (const { suffix, entry } of this.#wildcards) {
        if (serverName.length > suffix.length && serverName.endsWith(suffix)) return entry;
      }
    }
    return this.#fallback;
  }
}
