/**
 * The config in force as an operator writes it (GET /api/config): setting names, durations as "10s", no secrets, the
 * named pools and the routes.
 */
import { formatDuration } from "./duration.ts";
import { SETTINGS, type Setting } from "./settings.ts";
import type { Config, RouteSpec } from "./types.ts";

/** Health-check headers whose values are credentials for the backends. */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key"]);

export function configView(config: Config): Record<string, unknown> {
  const view = settingsView(config, SETTINGS);
  // As the file writes them: each pool's own settings, the routes with their keys.
  view.pools = Object.fromEntries(config.pools.map(({ name, overrides }) => [name, settingsView(overrides, SETTINGS.filter((s) => s.key in overrides))]));
  view.routes = config.routes.map(routeView);
  return view;
}

function settingsView(config: Partial<Config>, settings: readonly Setting[]): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const setting of settings) {
    const value = config[setting.key];
    if (setting.key === "adminToken") view[setting.name] = value ? "[redacted]" : "";
    else if (setting.key === "healthHeaders") view[setting.name] = config.healthHeaders!.map(([name, text]) => [name, SECRET_HEADERS.has(name.toLowerCase()) ? "[redacted]" : text]);
    else if (setting.key === "admin") view[setting.name] = config.admin ? `${config.admin.host}:${config.admin.port}` : "off";
    else if (setting.valueHint === "duration") view[setting.name] = formatDuration(value as number);
    else view[setting.name] = value;
  }
  return view;
}

function routeView({ host, pathPrefix, stripPrefix, methods, headers, pool }: RouteSpec): Record<string, unknown> {
  return {
    ...(host !== undefined && { host }),
    ...(pathPrefix !== undefined && { "path-prefix": pathPrefix }),
    ...(stripPrefix !== undefined && { "strip-prefix": stripPrefix }),
    ...(methods && { method: methods }),
    ...(headers && { header: Object.fromEntries(headers) }),
    pool,
  };
}
