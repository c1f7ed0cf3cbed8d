/** The config file's JSON Schema and example stay in step with the settings table. */
import { expect, test } from "bun:test";
import { readConfigFile, resolveConfig } from "../../src/config/load.ts";
import { configSchema } from "../../src/config/schema.ts";
import { SETTINGS } from "../../src/config/settings.ts";
import { ROOT, runCommand } from "../helpers.ts";

test("deploy/lb.schema.json is what `lb schema` prints now (regenerate: lb schema > deploy/lb.schema.json)", async () => {
  const committed = await Bun.file(`${ROOT}deploy/lb.schema.json`).json();
  expect(committed).toEqual(configSchema());
  const { code, stdout } = await runCommand(["schema"]);
  expect(code).toBe(0);
  expect(JSON.parse(stdout)).toEqual(committed);
});

test("every setting has a schema and a description; unknown keys are refused", () => {
  const schema = configSchema() as { properties: Record<string, { description: string }>; additionalProperties: boolean };
  for (const setting of SETTINGS) {
    expect(Object.keys(setting.parse.schema).length).toBeGreaterThan(0);
    expect(schema.properties[setting.name]!.description).toContain(setting.example);
  }
  expect(schema.additionalProperties).toBe(false);
});

test("the commented example config is valid, and $schema keys are allowed", async () => {
  const layer = await readConfigFile(`${ROOT}deploy/lb.example.toml`);
  const config = resolveConfig([layer], { stdoutIsTTY: false });
  expect(config.backends).toHaveLength(3);
  expect(config.healthStatus).toEqual([[200, 399]]);
  const schema = configSchema() as { properties: Record<string, unknown> };
  for (const key of Object.keys(layer.values)) expect(schema.properties).toHaveProperty([key]);
  expect(resolveConfig([{ source: "x.json", values: { $schema: "./lb.schema.json", backends: ["http://a:1"] } }], { stdoutIsTTY: false }).backends).toHaveLength(1);
});
