/**
 * Named pools and the routes that pick one (config file only): `[pools.NAME]` tables hold the settings a pool may set
 * for itself (those marked perPool in the settings table; the top level gives their defaults), and `[[routes]]` is an
 * ordered list of conditions, first match wins. Without any of this, the top-level backends are the one pool,
 * "default", and every request goes there: the one-pool command line is unchanged.
 */
import { closest } from "./did-you-mean.ts";
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

/** The pools a config defines, each with its effective config; the top-level backends form "default" when given. */
export function namedPools(config: Config): NamedPoolConfig[] {
  const named = config.pools.map(({ name, overrides }) => ({ name, config: { ...config, ...overrides } }));
  if (config.pools.length && !config.backends.length) return named;
  return [{ name: DEFAULT_POOL, config }, ...named];
}

/**
 * Where requests no route takes go: the default pool when the top-level backends form one (HAProxy's
 * default_backend: adding a route to a working config does not turn the rest of its traffic into 404s); without it,
 * the only named pool when there are no routes; else nowhere (lb's 404).
 */
export function fallbackPool(config: Config): string | null {
  if (config.backends.length || !config.pools.length) return DEFAULT_POOL;
  return !config.routes.length && config.pools.length === 1 ? config.pools[0]!.name : null;
}

type Problems = string[];
const POOL_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

/** `[pools.NAME]` tables: each problem is named by its path ("pools.api.policy: ..."). */
export function parsePools(raw: unknown, problems: Problems): PoolSpec[] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    problems.push('pools: must be a table of named pools: [pools.api] with backends = ["http://10.0.0.1:8080"]');
    return [];
  }
  return Object.entries(raw).flatMap(([name, table]) => {
    const at = `pools.${name}`;
    if (!POOL_NAME.test(name)) problems.push(`${at}: a pool name is letters, digits, "-" and "_"`);
    if (name === DEFAULT_POOL) problems.push(`${at}: "${DEFAULT_POOL}" is the pool the top-level backends form; name this one otherwise`);
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      problems.push(`${at}: must be a table of settings such as backends = ["http://10.0.0.1:8080"]`);
      return [];
    }
    const overrides = parsePoolSettings(at, table as Record<string, unknown>, problems);
    if (!overrides.backends?.length) problems.push(`${at}.backends: a pool needs backends, e.g. backends = ["http://10.0.0.1:8080"]`);
    return [{ name, overrides }];
  });
}

function parsePoolSettings(at: string, table: Record<string, unknown>, problems: Problems): Partial<Config> {
  const known = PER_POOL_SETTINGS.map((s) => s.name);
  const overrides: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(table)) {
    const setting = PER_POOL_SETTINGS.find((s) => s.name === key);
    if (!setting) {
      const everywhere = SETTINGS.some((s) => s.name === key);
      const guess = closest(key, known);
      problems.push(
        `${at}.${key}: ` +
          (everywhere ? `set for the whole of lb only, not per pool; move it to the top level` : `not a pool setting${guess ? `; did you mean ${guess}?` : ""}`),
      );
      continue;
    }
    const parsed = parseSettingAt(setting, value, `${at}.${key}`, problems);
    if (parsed) overrides[setting.key] = parsed.value;
  }
  return overrides as Partial<Config>;
}

const ROUTE_KEYS = ["host", "path-prefix", "strip-prefix", "method", "header", "pool"];
const HOST_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `[[routes]]`: each problem is named by its index ("routes[2].pool: ..."). */
export function parseRoutes(raw: unknown, problems: Problems): RouteSpec[] {
  if (!Array.isArray(raw)) {
    problems.push('routes: must be a list: [[routes]] tables with pool = "NAME" and conditions such as path-prefix = "/api/"');
    return [];
  }
  return raw.flatMap((item, index) => {
    const at = `routes[${index}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      problems.push(`${at}: must be a table with pool = "NAME" and its conditions`);
      return [];
    }
    const route = parseRoute(at, item as Record<string, unknown>, problems);
    return route ? [route] : [];
  });
}

function parseRoute(at: string, table: Record<string, unknown>, problems: Problems): RouteSpec | null {
  const before = problems.length;
  for (const key of Object.keys(table)) {
    if (ROUTE_KEYS.includes(key)) continue;
    const guess = closest(key, ROUTE_KEYS);
    problems.push(`${at}.${key}: not a route condition; ${guess ? `did you mean ${guess}?` : `known: ${ROUTE_KEYS.join(", ")}`}`);
  }
  const route: RouteSpec = { pool: "" };
  const { host, pool, method, header } = table;
  const pathPrefix = table["path-prefix"];
  const stripPrefix = table["strip-prefix"];
  if (typeof pool !== "string" || pool === "") problems.push(`${at}.pool: missing; write pool = "NAME" (a [pools.NAME] table, or "${DEFAULT_POOL}")`);
  else route.pool = pool;
  if (host !== undefined) {
    if (typeof host === "string" && HOST_PATTERN.test(host.toLowerCase())) route.host = host.toLowerCase();
    else problems.push(`${at}.host: "${host}" is not a host name; write api.example.com or *.example.com (no port, no scheme)`);
  }
  if (pathPrefix !== undefined) {
    if (typeof pathPrefix === "string" && pathPrefix.startsWith("/")) route.pathPrefix = pathPrefix;
    else problems.push(`${at}.path-prefix: "${pathPrefix}" must start with "/", e.g. "/api/"`);
  }
  if (stripPrefix !== undefined) {
    if (typeof stripPrefix !== "boolean") problems.push(`${at}.strip-prefix: must be true or false`);
    else if (stripPrefix && route.pathPrefix === undefined) problems.push(`${at}.strip-prefix: needs path-prefix, the part to strip`);
    else route.stripPrefix = stripPrefix;
  }
  if (method !== undefined) {
    const methods = (Array.isArray(method) ? method : [method]).map((m) => (typeof m === "string" ? m.toUpperCase() : m));
    if (methods.length && methods.every((m) => typeof m === "string" && TOKEN.test(m))) route.methods = methods as string[];
    else problems.push(`${at}.method: write a method or a list of them, e.g. method = ["GET", "HEAD"]`);
  }
  if (header !== undefined) {
    const fields = typeof header === "object" && header !== null && !Array.isArray(header) ? Object.entries(header) : null;
    if (fields?.length && fields.every(([name, value]) => TOKEN.test(name) && typeof value === "string")) {
      route.headers = fields.map(([name, value]) => [name.toLowerCase(), value as string]);
    } else problems.push(`${at}.header: write a table of names and exact values, e.g. header = { "x-canary" = "1" }`);
  }
  return problems.length === before ? route : null;
}

/**
 * Routes and pools that do not fit together: a route to a pool nobody defined, no way to reach the pools, a backend
 * in two pools (its state, metrics and admin id are one per address).
 */
export function checkRouting(config: Config, problems: Problems): void {
  const pools = namedPools(config);
  const names = pools.map((p) => p.name);
  const owner = new Map<string, string>();
  for (const { name, config: poolConfig } of pools) {
    for (const { url } of poolConfig.backends) {
      const first = owner.get(url);
      if (first) problems.push(`pools.${name}.backends: ${url} is in pool ${first} too; a backend belongs to one pool`);
      else owner.set(url, name);
    }
  }
  config.routes.forEach((route, index) => {
    if (!names.includes(route.pool)) {
      problems.push(`routes[${index}].pool: no pool is named "${route.pool}"; the pools are ${names.join(", ")}`);
    }
  });
  if (config.pools.length && !config.routes.length && fallbackPool(config) === null) {
    problems.push(`routes: ${names.length} pools (${names.join(", ")}) but no routes; add [[routes]] tables that say which requests go where`);
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
        },
      },
    },
  };
}
