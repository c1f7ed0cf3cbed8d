/**
 * Named pools and the routes that pick one (config file only): `[pools.NAME]` tables hold the settings a pool may set
 * for itself (those marked perPool in the settings table; the top level gives their defaults), and `[[routes]]` is an
 * ordered list of conditions, first match wins. Without any of this, the top-level backends are the one pool,
 * "default", and every request goes there: the one-pool command line is unchanged.
 */
import { isTcpPool } from "./backend-url.ts";
import { closest } from "./did-you-mean.ts";
import type { KeyPath } from "./places.ts";
import { SETTINGS, type Setting, parseSettingAt } from "./settings.ts";
import type { Config, PoolSpec, RouteSpec } from "./types.ts";
import type { JsonSchema } from "./values.ts";

/** The pool the top-level backends form, and where requests go when there are no routes. */
export const DEFAULT_POOL = "default";

/** A pool as it runs: its name and its whole config (the top level with the pool's own settings over it). */
export interface NamedPoolConfig {
  name: string;
  config: Config;
}

const PER_POOL_SETTINGS: readonly Setting[] = SETTINGS.filter((s) => s.perPool);
/** What a route may set over its pool's (the edge policies, compression): docs/edge.md. */
export const PER_ROUTE_SETTINGS: readonly Setting[] = SETTINGS.filter((s) => s.perRoute);

/** The pools a config defines, each with its effective config; the top-level backends form "default" when given. */
export function namedPools(config: Config): NamedPoolConfig[] {
  const named = config.pools.map(({ name, overrides }) => ({ name, config: { ...config, ...overrides, ...connectCheck(overrides) } }));
  if (config.pools.length && !config.backends.length) return named;
  return [{ name: DEFAULT_POOL, config }, ...named];
}

/**
 * A pool of tcp:// backends is checked by a TCP connect (health-path "", which no one can write), unless its own table
 * sets a health-path: then by HTTP on the same port. The top level's health-path is for the HTTP pools.
 */
function connectCheck(overrides: Partial<Config>): Partial<Config> {
  return isTcpPool(overrides.backends ?? []) && overrides.healthPath === undefined ? { healthPath: "" } : {};
}

/**
 * Where requests no route takes go: the default pool when the top-level backends form one (HAProxy's
 * default_backend: adding a route to a working config does not turn the rest of its traffic into 404s); without it,
 * the only named pool when there are no routes; else nowhere (lb's 404).
 */
export function fallbackPool(config: Config): string | null {
  if (config.backends.length || !config.pools.length) return DEFAULT_POOL;
  const http = httpPoolNames(config);
  return !config.routes.length && http.length === 1 ? http[0]! : null;
}

/** The named pools that take HTTP requests: those of tcp:// backends take [[tcp]] connections only. */
function httpPoolNames(config: Config): string[] {
  return config.pools.filter(({ overrides }) => !isTcpPool(overrides.backends ?? [])).map(({ name }) => name);
}

type Problems = string[];

/** Names a problem's place: the file, the line where `path` is written when known, and the path (`pools.api.policy`). */
export type PlaceOf = (path: KeyPath) => string;

const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

/** `[pools.NAME]` tables: each problem is named by its place ("lb.toml:7: pools.api.policy: ..."). */
export function parsePools(raw: unknown, placeOf: PlaceOf, problems: Problems): PoolSpec[] {
  if (!isTable(raw)) {
    problems.push(`${placeOf(["pools"])}: must be a table of named pools: [pools.api] with backends = ["http://10.0.0.1:8080"]`);
    return [];
  }
  return Object.entries(raw).flatMap(([name, table]) => {
    const at = (...rest: KeyPath) => placeOf(["pools", name, ...rest]);
    if (!POOL_NAME.test(name)) problems.push(`${at()}: a pool name is letters, digits, "-" and "_"`);
    if (name === DEFAULT_POOL) problems.push(`${at()}: "${DEFAULT_POOL}" is the pool the top-level backends form; name this one otherwise`);
    if (!isTable(table)) {
      problems.push(`${at()}: must be a table of settings such as backends = ["http://10.0.0.1:8080"]`);
      return [];
    }
    const overrides = parsePoolSettings(at, table, problems);
    // Backends that are written but wrong have their own problem already.
    if (table.backends === undefined || overrides.backends?.length === 0) {
      problems.push(`${at("backends")}: a pool needs backends, e.g. backends = ["http://10.0.0.1:8080"]`);
    }
    return [{ name, overrides }];
  });
}

function parsePoolSettings(at: (...rest: KeyPath) => string, table: Record<string, unknown>, problems: Problems): Partial<Config> {
  const known = PER_POOL_SETTINGS.map((s) => s.name);
  const overrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(table)) {
    const setting = PER_POOL_SETTINGS.find((s) => s.name === key);
    if (!setting) {
      const everywhere = SETTINGS.some((s) => s.name === key);
      const guess = closest(key, known);
      problems.push(
        `${at(key)}: ` +
          (everywhere ? `set for the whole of lb only, not per pool; move it to the top level` : `not a pool setting${guess ? `; did you mean ${guess}?` : ""}`),
      );
      continue;
    }
    const parsed = parseSettingAt(setting, value, at(key), problems);
    if (parsed) overrides[setting.key] = parsed.value;
  }
  return overrides as Partial<Config>;
}

/**
 * The pools routes may name, as the file writes them (one whose settings are wrong too, so a route to it is not also
 * "no such pool"): "default" when the top-level backends form one, then the named pools; null when `pools` is not a
 * table (that is its problem).
 */
export function writtenPoolNames(rawPools: unknown, topLevelBackends: boolean): string[] | null {
  if (rawPools !== undefined && !isTable(rawPools)) return null;
  const named = Object.keys(rawPools ?? {});
  return topLevelBackends || !named.length ? [DEFAULT_POOL, ...named] : named;
}

const ROUTE_KEYS = ["host", "path-prefix", "strip-prefix", "method", "header", "pool"];
const HOST_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `[[routes]]`: each problem is named by its place ("lb.toml:21: routes[2].pool: ..."); `pools`: see writtenPoolNames. */
export function parseRoutes(raw: unknown, pools: readonly string[] | null, placeOf: PlaceOf, problems: Problems): RouteSpec[] {
  if (!Array.isArray(raw)) {
    problems.push(`${placeOf(["routes"])}: must be a list: [[routes]] tables with pool = "NAME" and conditions such as path-prefix = "/api/"`);
    return [];
  }
  return raw.flatMap((item, index) => {
    const at = (...rest: KeyPath) => placeOf(["routes", index, ...rest]);
    if (!isTable(item)) {
      problems.push(`${at()}: must be a table with pool = "NAME" and its conditions`);
      return [];
    }
    const route = parseRoute(at, item, pools, problems);
    return route ? [route] : [];
  });
}

function parseRoute(at: (...rest: KeyPath) => string, table: Record<string, unknown>, pools: readonly string[] | null, problems: Problems): RouteSpec | null {
  const before = problems.length;
  const route: RouteSpec = { pool: "" };
  const overrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(table)) {
    if (ROUTE_KEYS.includes(key)) continue;
    const setting = PER_ROUTE_SETTINGS.find((s) => s.name === key);
    if (setting) {
      const parsed = parseSettingAt(setting, value, at(key), problems);
      if (parsed) overrides[setting.key] = parsed.value;
      continue;
    }
    const known = [...ROUTE_KEYS, ...PER_ROUTE_SETTINGS.map((s) => s.name)];
    const guess = closest(key, known);
    const elsewhere = SETTINGS.some((s) => s.name === key) ? `set per pool or for the whole of lb, not per route; move it to [pools.NAME] or the top level` : null;
    problems.push(`${at(key)}: ${elsewhere ?? `not a route condition or setting; ${guess ? `did you mean ${guess}?` : `known: ${known.join(", ")}`}`}`);
  }
  if (Object.keys(overrides).length) route.overrides = overrides as Partial<Config>;
  const { host, pool, method, header } = table;
  const pathPrefix = table["path-prefix"];
  const stripPrefix = table["strip-prefix"];
  if (typeof pool !== "string" || pool === "") problems.push(`${at("pool")}: missing; write pool = "NAME" (a [pools.NAME] table, or "${DEFAULT_POOL}")`);
  else if (pools && !pools.includes(pool)) problems.push(`${at("pool")}: no pool is named "${pool}"; the pools are ${pools.join(", ")}`);
  else route.pool = pool;
  if (host !== undefined) {
    if (typeof host === "string" && HOST_PATTERN.test(host.toLowerCase())) route.host = host.toLowerCase();
    else problems.push(`${at("host")}: "${host}" is not a host name; write api.example.com or *.example.com (no port, no scheme)`);
  }
  if (pathPrefix !== undefined) {
    if (typeof pathPrefix === "string" && pathPrefix.startsWith("/")) route.pathPrefix = pathPrefix;
    else problems.push(`${at("path-prefix")}: "${pathPrefix}" must start with "/", e.g. "/api/"`);
  }
  if (stripPrefix !== undefined) {
    if (typeof stripPrefix !== "boolean") problems.push(`${at("strip-prefix")}: must be true or false`);
    // A path-prefix that is written but wrong has its own problem already.
    else if (stripPrefix && pathPrefix === undefined) problems.push(`${at("strip-prefix")}: needs path-prefix, the part to strip`);
    else route.stripPrefix = stripPrefix;
  }
  if (method !== undefined) {
    const methods = (Array.isArray(method) ? method : [method]).map((m) => (typeof m === "string" ? m.toUpperCase() : m));
    if (methods.length && methods.every((m) => typeof m === "string" && TOKEN.test(m))) route.methods = methods as string[];
    else problems.push(`${at("method")}: write a method or a list of them, e.g. method = ["GET", "HEAD"]`);
  }
  if (header !== undefined) {
    const fields = isTable(header) ? Object.entries(header) : null;
    if (fields?.length && fields.every(([name, value]) => TOKEN.test(name) && typeof value === "string")) {
      route.headers = fields.map(([name, value]) => [name.toLowerCase(), value as string]);
    } else problems.push(`${at("header")}: write a table of names and exact values, e.g. header = { "x-canary" = "1" }`);
  }
  return problems.length === before ? route : null;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What holds across pools and routes: a backend in one pool only (its state, metrics and admin id are one per
 * address), and routes when no pool takes what they leave. `pools` as writtenPoolNames gives them, so a section with
 * problems of its own adds none here.
 */
export function checkRouting(config: Config, pools: readonly string[] | null, routesWritten: boolean, placeOf: PlaceOf, problems: Problems): void {
  const owner = new Map<string, string>();
  // Each pool's own backends: one without (its problem already) would otherwise show the top level's.
  const own = config.pools.map(({ name, overrides }) => ({ name, backends: overrides.backends ?? [] }));
  for (const { name, backends } of [{ name: DEFAULT_POOL, backends: config.backends }, ...own]) {
    for (const { url } of backends) {
      const first = owner.get(url);
      if (first) problems.push(`${placeOf(["pools", name, "backends"])}: ${url} is in pool ${first} too; a backend belongs to one pool`);
      else owner.set(url, name);
    }
  }
  const http = pools?.filter((name) => name === DEFAULT_POOL || httpPoolNames(config).includes(name) || !config.pools.some((p) => p.name === name));
  if (http && !routesWritten && http.length > 1 && !http.includes(DEFAULT_POOL)) {
    problems.push(`${placeOf(["routes"])}: ${http.length} pools (${http.join(", ")}) but no routes; add [[routes]] tables that say which requests go where`);
  }
}

/** The JSON Schema of the two sections, from the same tables the parsers read. */
export function routingSchema(): Record<string, JsonSchema> {
  const poolProperties = Object.fromEntries(PER_POOL_SETTINGS.map((s) => [s.name, { ...s.parse.schema, description: s.description }]));
  return {
    pools: {
      description: "Named pools, each with its own backends and settings; the top level gives the defaults",
      type: "object",
      additionalProperties: { type: "object", properties: poolProperties, required: ["backends"], additionalProperties: false },
    },
    routes: {
      description: "Which requests go to which pool; the first route whose conditions all hold wins",
      type: "array",
      items: {
        type: "object",
        required: ["pool"],
        additionalProperties: false,
        properties: {
          host: { type: "string", description: "api.example.com, or *.example.com for any subdomain" },
          "path-prefix": { type: "string", pattern: "^/", description: "Plain prefix of the path, e.g. /api/" },
          "strip-prefix": { type: "boolean", description: "The backend sees the path without path-prefix" },
          method: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
          header: { type: "object", additionalProperties: { type: "string" }, description: "Exact values, e.g. { \"x-canary\" = \"1\" }" },
          pool: { type: "string", description: "The pool's name ([pools.NAME], or default for the top-level backends)" },
          ...Object.fromEntries(PER_ROUTE_SETTINGS.map((s) => [s.name, { ...s.parse.schema, description: `${s.description} (over the pool's)` }])),
        },
      },
    },
  };
}
