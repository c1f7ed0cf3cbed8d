/**
 * `[[tcp]]`: layer-4 listeners (src/l4/). Each entry says where to listen, which pool of tcp:// backends takes the
 * connections, and optionally the TLS server names it takes (entries sharing `listen` form one listener that routes
 * by the ClientHello's name; the entry without `sni` is its default). Also what keeps HTTP and TCP pools apart: a pool
 * is one or the other, by its backends' scheme.
 */
import { isTcpBackend, isTcpPool } from "./backend-url.ts";
import { closest } from "./did-you-mean.ts";
import { formatDuration } from "./duration.ts";
import type { KeyPath } from "./places.ts";
import { DEFAULT_POOL, type PlaceOf } from "./pools.ts";
import type { Config, ListenAddress, TcpSpec } from "./types.ts";
import { duration } from "./values.ts";
import type { JsonSchema } from "./values.ts";

const TCP_KEYS = ["listen", "pool", "sni", "idle-timeout"];
/** As long as HAProxy's usual `timeout tunnel`: database and MQTT connections sit idle for long stretches. */
export const DEFAULT_TCP_IDLE_MS = 3_600_000;
const idleTimeout = duration(1000);
const SNI_PATTERN = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/;

/** `HOST:PORT` or `[v6]:PORT`, port 1-65535; null when it is not one. */
export function parseListen(value: unknown): ListenAddress | null {
  const match = typeof value === "string" ? LISTEN.exec(value.trim()) : null;
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return null;
  return { host: match[1] ?? match[2]!, port };
}

export function formatListen({ host, port }: ListenAddress): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** A [[tcp]] entry and where the file has it (entries with problems of their own are left out, not renumbered). */
export interface WrittenTcp {
  index: number;
  spec: TcpSpec;
}

/** `[[tcp]]` entries; each problem names its place ("lb.toml:30: tcp[1].listen: ..."). */
export function parseTcp(raw: unknown, placeOf: PlaceOf, problems: string[]): WrittenTcp[] {
  if (!Array.isArray(raw)) {
    problems.push(`${placeOf(["tcp"])}: must be a list: [[tcp]] tables with listen = "0.0.0.0:5432" and pool = "NAME"`);
    return [];
  }
  return raw.flatMap((item, index) => {
    const at = (...rest: KeyPath) => placeOf(["tcp", index, ...rest]);
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      problems.push(`${at()}: must be a table with listen = "HOST:PORT" and pool = "NAME"`);
      return [];
    }
    const spec = parseEntry(at, item as Record<string, unknown>, problems);
    return spec ? [{ index, spec }] : [];
  });
}

function parseEntry(at: (...rest: KeyPath) => string, table: Record<string, unknown>, problems: string[]): TcpSpec | null {
  const before = problems.length;
  for (const key of Object.keys(table)) {
    if (TCP_KEYS.includes(key)) continue;
    const guess = closest(key, TCP_KEYS);
    problems.push(`${at(key)}: not a [[tcp]] key; ${guess ? `did you mean ${guess}?` : `known: ${TCP_KEYS.join(", ")}`}`);
  }
  const listen = parseListen(table.listen);
  if (!listen) problems.push(`${at("listen")}: ${table.listen === undefined ? "missing" : `"${table.listen}" is not an address`}; write listen = "0.0.0.0:5432" (HOST:PORT, [::]:PORT for IPv6)`);
  const { pool, sni } = table;
  if (typeof pool !== "string" || pool === "") problems.push(`${at("pool")}: missing; write pool = "NAME", a [pools.NAME] table of tcp:// backends`);
  let names: string[] | undefined;
  if (sni !== undefined) {
    const list = Array.isArray(sni) ? sni : [sni];
    names = list.map((name) => (typeof name === "string" ? name.toLowerCase().replace(/\.$/, "") : ""));
    const bad = list.find((name, i) => !SNI_PATTERN.test(names![i]!));
    const what = !names.length ? "an empty list" : typeof bad === "string" ? `"${bad}" is not a server name` : bad !== undefined ? `${JSON.stringify(bad)} is not text` : "";
    if (what) problems.push(`${at("sni")}: ${what}; write exact names or wildcards, e.g. sni = ["shop.example.com", "*.example.com"]`);
  }
  let idle = DEFAULT_TCP_IDLE_MS;
  if (table["idle-timeout"] !== undefined) {
    const parsed = idleTimeout(table["idle-timeout"]);
    if ("error" in parsed) problems.push(`${at("idle-timeout")}: ${parsed.error}`);
    else idle = parsed.value;
  }
  if (problems.length !== before) return null;
  return { listen: listen!, pool: pool as string, ...(names && { sni: names }), idleTimeout: idle };
}

/** Hosts that take a port on every address: a listener there clashes with any other on the same port. */
const ANY_ADDRESS = new Set(["0.0.0.0", "::", "*", ""]);

function overlaps(a: ListenAddress, b: ListenAddress): boolean {
  return a.port === b.port && (a.host === b.host || ANY_ADDRESS.has(a.host) || ANY_ADDRESS.has(b.host));
}

/**
 * What holds across [[tcp]] and the pools: each entry's pool exists and relays bytes, one listener's names are
 * each taken once and it has at most one default, and no listen address takes a port lb's HTTP side uses.
 */
export function checkTcp(config: Config, written: readonly WrittenTcp[], pools: readonly string[] | null, placeOf: PlaceOf, problems: string[]): void {
  const listeners = new Map<string, { address: ListenAddress; names: Map<string, number>; fallback?: number }>();
  for (const { index, spec: entry } of written) {
    const at = (...rest: KeyPath) => placeOf(["tcp", index, ...rest]);
    const poolProblem = tcpPoolProblem(config, pools, entry.pool);
    if (poolProblem) problems.push(`${at("pool")}: ${poolProblem}`);
    const key = formatListen(entry.listen);
    const clash = [...listeners.values()].find((l) => overlaps(l.address, entry.listen) && formatListen(l.address) !== key);
    if (clash) problems.push(`${at("listen")}: ${key} takes the port of ${formatListen(clash.address)} (another [[tcp]] listener)`);
    const taken = httpPorts(config).find((used) => overlaps(used.address, entry.listen));
    if (taken) problems.push(`${at("listen")}: ${key} is lb's ${taken.what} (${formatListen(taken.address)}); choose another port`);
    let listener = listeners.get(key);
    if (!listener) listeners.set(key, (listener = { address: entry.listen, names: new Map() }));
    if (!entry.sni) {
      if (listener.fallback !== undefined) problems.push(`${at()}: ${key} has a default entry already (tcp[${listener.fallback}], without sni); give this one sni = [...]`);
      else listener.fallback = index;
    }
    for (const name of entry.sni ?? []) {
      const first = listener.names.get(name);
      if (first !== undefined) problems.push(`${at("sni")}: "${name}" is taken by tcp[${first}] on ${key} already`);
      else listener.names.set(name, index);
    }
  }
}

function tcpPoolProblem(config: Config, pools: readonly string[] | null, name: string): string | null {
  if (pools && !pools.includes(name)) return `no pool is named "${name}"; the pools are ${pools.join(", ")}`;
  const pool = name === DEFAULT_POOL ? config : config.pools.find((p) => p.name === name)?.overrides;
  if (pool?.backends && !isTcpPool(pool.backends)) {
    return `pool ${name} is an HTTP pool (http:// backends); [[tcp]] relays to tcp:// backends: backends = ["tcp://10.0.0.5:5432"]`;
  }
  return null;
}

/** The addresses lb's HTTP side listens on. */
function httpPorts(config: Config): Array<{ what: string; address: ListenAddress }> {
  return [
    { what: "HTTP port", address: { host: config.host, port: config.port } },
    ...(config.httpRedirectPort ? [{ what: "redirect port", address: { host: config.host, port: config.httpRedirectPort } }] : []),
    ...(config.admin ? [{ what: "admin address", address: config.admin }] : []),
  ];
}

/**
 * A pool is HTTP or TCP, never both: tcp:// backends only in [pools.NAME] tables of their own (the top-level backends
 * are the HTTP pool), and routes only to HTTP pools.
 */
export function checkPoolKinds(config: Config, placeOf: PlaceOf, problems: string[]): void {
  if (config.backends.some(({ url }) => isTcpBackend(url))) {
    problems.push(`${placeOf(["backends"])}: tcp:// backends cannot be HTTP backends; put them in a [pools.NAME] table that a [[tcp]] entry names`);
  }
  for (const { name, overrides } of config.pools) {
    const backends = overrides.backends ?? [];
    const tcp = backends.filter(({ url }) => isTcpBackend(url));
    if (tcp.length && tcp.length < backends.length) {
      problems.push(`${placeOf(["pools", name, "backends"])}: ${tcp[0]!.url} is a tcp:// backend in an HTTP pool; a pool's backends are all tcp:// or all http(s)://`);
    }
  }
  config.routes.forEach((route, index) => {
    const pool = config.pools.find((p) => p.name === route.pool);
    if (pool?.overrides.backends && isTcpPool(pool.overrides.backends)) {
      problems.push(`${placeOf(["routes", index, "pool"])}: pool ${route.pool} has tcp:// backends; HTTP routes go to HTTP pools, [[tcp]] entries to TCP ones`);
    }
  });
}

/** The JSON Schema of `[[tcp]]`. */
export function tcpSchema(): Record<string, JsonSchema> {
  return {
    tcp: {
      description: "Layer-4 listeners: bytes relayed to a pool of tcp:// backends; entries sharing listen route by TLS server name (SNI)",
      type: "array",
      items: {
        type: "object",
        required: ["listen", "pool"],
        additionalProperties: false,
        properties: {
          listen: { type: "string", pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\s\\[\\]]+):\\d{1,5}$", description: "HOST:PORT, e.g. 0.0.0.0:5432" },
          pool: { type: "string", description: "A [pools.NAME] table of tcp:// backends" },
          sni: { type: "array", items: { type: "string" }, description: "TLS server names this entry takes (exact or *.example.com); none: the listener's default" },
          "idle-timeout": { ...idleTimeout.schema, description: `A connection with no byte either way for this long is closed. Default: ${formatDuration(DEFAULT_TCP_IDLE_MS)}` },
        },
      },
    },
  };
}
