/** The config in force as an operator writes it (GET /api/config): setting names, durations as "10s", no secrets. */
import { formatDuration } from "./duration.ts";
import { type Config, SETTINGS } from "./settings.ts";

/** Health-check headers whose values are credentials for the backends. */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key"]);

export function configView(config: Config): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const value = config[setting.key];
    if (setting.key === "adminToken") view[setting.name] = value ? "[redacted]" : "";
    else if (setting.key === "healthHeaders") view[setting.name] = config.healthHeaders.map(([name, text]) => [name, SECRET_HEADERS.has(name.toLowerCase()) ? "[redacted]" : text]);
    else if (setting.key === "admin") view[setting.name] = config.admin ? `${config.admin.host}:${config.admin.port}` : "off";
    else if (setting.valueHint === "duration") view[setting.name] = formatDuration(value as number);
    else view[setting.name] = value;
  }
  return view;
}
