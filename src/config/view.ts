/**
 * The config in force as an operator writes it (GET /api/config): setting names, each value as the file would write
 * it (durations as "10s", statuses as "200-399"), the values in effect, no secrets, the named pools and the routes.
 */
import { formatDuration } from "./duration.ts";
import { SETTINGS, type Setting } from "./settings.ts";
import { formatListen } from "./tcp.ts";
import { shownEndpoint } from "./values-tracing.ts";
import type { Config, RouteSpec } from "./types.ts";

/** Fields whose values are credentials (a health check's, or what a header rule sends): shown by name only. */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"]);

function withoutSecrets(fields: ReadonlyArray<[string, string]>): Array<[string, string]> {
  return fields.map(([name, text]) => [name, SECRET_HEADERS.has(name.toLowerCase()) ? "[redacted]" : text]);
}

export function configView(config: Config): Record<string, unknown> {
  const view = settingsView(config, SETTINGS);
  // As the file writes them: each pool's own settings, the routes with their keys.
  view.pools = Object.fromEntries(config.pools.map(({ name, overrides }) => [name, poolView(config, overrides)]));
  view.routes = config.routes.map((route) => routeView(config, route));
  view.tcp = config.tcp.map(({ listen, pool, sni, idleTimeout }) => ({ listen: formatListen(listen), pool, ...(sni && { sni }), "idle-timeout": formatDuration(idleTimeout) }));
  return view;
}

/** A pool's own settings, and its down interval where the one in effect is not the top level's (its own interval). */
function poolView(config: Config, overrides: Partial<Config>): Record<string, unknown> {
  const effective = { ...config, ...overrides };
  const differs = downInterval(effective) !== downInterval(config);
  return settingsView(effective, SETTINGS.filter((s) => s.key in overrides || (s.key === "healthDownInterval" && differs)));
}

/** The interval between checks of a down backend: its own setting, or when that is 0, the health interval. */
function downInterval(config: Config): number {
  return config.healthDownInterval || config.healthInterval;
}

/** Each of `settings` as the config file writes it (`"10s"`, `"200-399"`, `"header:x-user"`, `"10mb"`), secrets hidden. */
function settingsView(config: Config, settings: readonly Setting[]): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const setting of settings) {
    const value = setting.key === "healthDownInterval" ? downInterval(config) : config[setting.key];
    if (setting.key === "adminToken" || setting.key === "acmeEabHmac") view[setting.name] = value ? "[redacted]" : "";
    else if (setting.key === "otlpEndpoint") view[setting.name] = shownEndpoint(config.otlpEndpoint);
    else if (setting.key === "otlpHeaders") view[setting.name] = config.otlpHeaders.map(([name]) => [name, "[redacted]"]);
    else if (setting.key === "healthHeaders") view[setting.name] = withoutSecrets(config.healthHeaders);
    else if (setting.key === "requestHeaders" || setting.key === "responseHeaders") {
      const rules = config[setting.key];
      view[setting.name] = setting.parse.write!({ ...rules, set: withoutSecrets(rules.set), add: withoutSecrets(rules.add) });
    }
    else view[setting.name] = setting.parse.write ? setting.parse.write(value) : value;
  }
  return view;
}

function routeView(config: Config, { host, pathPrefix, stripPrefix, methods, headers, pool, overrides }: RouteSpec): Record<string, unknown> {
  const own = overrides ? settingsView({ ...config, ...overrides }, SETTINGS.filter((s) => s.key in overrides)) : {};
  return {
    ...(host !== undefined && { host }),
    ...(pathPrefix !== undefined && { "path-prefix": pathPrefix }),
    ...(stripPrefix !== undefined && { "strip-prefix": stripPrefix }),
    ...(methods && { method: methods }),
    ...(headers && { header: Object.fromEntries(headers) }),
    pool,
    ...own,
  };
}
