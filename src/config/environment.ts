/**
 * Every setting from the environment, named after its flag: LB_PORT, LB_HEALTH_PATH, LB_ADMIN_TOKEN (the way to give
 * a secret without it showing in `ps`). Precedence, as Traefik documents it: flags, then the environment, then the
 * config file.
 */
import type { Layer } from "./load.ts";
import { SETTINGS, type Setting } from "./settings.ts";

export function envName(setting: Pick<Setting, "name">): string {
  return `LB_${setting.name.toUpperCase().replaceAll("-", "_")}`;
}

/** The settings `vars` (process.env) sets. An empty variable counts as unset, as shells and Compose files leave them. */
export function environmentLayer(vars: Record<string, string | undefined>): Layer {
  const values: Record<string, unknown> = {};
  const names = new Map<string, string>();
  for (const setting of SETTINGS) {
    const name = envName(setting);
    const raw = vars[name];
    if (raw === undefined || raw === "") continue;
    names.set(setting.name, name);
    // A repeatable setting (--health-header) takes one value per line; backends are comma-separated as on a flag.
    values[setting.name] = setting.repeatable ? raw.split("\n").filter((line) => line.trim() !== "") : raw;
  }
  return { source: "environment", values, placeOf: ([key]) => `environment ${names.get(String(key)) ?? key}` };
}
