/** The JSON Schema of lb's config file, generated from the settings table (`lb schema` prints it). */
import { routingSchema } from "./pools.ts";
import { SETTINGS, describeDefault } from "./settings.ts";
import { tcpSchema } from "./tcp.ts";
import type { JsonSchema } from "./values.ts";

export function configSchema(): JsonSchema {
  const properties: Record<string, JsonSchema> = { $schema: { type: "string" } };
  for (const setting of SETTINGS) {
    const shown = describeDefault(setting);
    properties[setting.name] = {
      ...setting.parse.schema,
      description: `${setting.description}.${shown ? ` Default: ${shown}.` : ""} Flag: ${setting.example}`,
    };
  }
  Object.assign(properties, routingSchema(), tcpSchema());
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "lb configuration (TOML, YAML or JSON)",
    type: "object",
    additionalProperties: false,
    properties,
  };
}
