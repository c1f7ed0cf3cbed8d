/**
 * The edge settings in the settings table: per pool and per route in a file (a route's over its pool's), each bad
 * value refused with its file:line, shown in GET /api/config's view, in the schema, and on the command line.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { environmentLayer } from "../../src/config/environment.ts";
import { checkConfig, readConfigFile, resolveConfig } from "../../src/config/load.ts";
import { configSchema } from "../../src/config/schema.ts";
import { configView } from "../../src/config/view.ts";
import { runCommand } from "../helpers.ts";

const env = { stdoutIsTTY: false };
const dir = mkdtempSync(join(tmpdir(), "lb-edge-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const GOOD = [
  'backends = ["http://10.0.0.9:1"]',
  'trusted-proxies = ["10.0.0.0/8", "fd00::/8"]',
  "[pools.api]",
  'backends = ["http://10.0.0.1:1"]',
  'allow = ["10.0.0.0/8", "2001:db8::/32"]',
  'rate-limit = "100/s"',
  'request-headers = { set = { "X-Real-IP" = "{client_ip}" }, remove = ["X-Debug"] }',
  "[[routes]]",
  'path-prefix = "/admin/"',
  'pool = "api"',
  'allow = ["10.1.0.0/16"]',
  'rate-limit = "5/m"',
  "rate-limit-burst = 2",
  'rate-limit-key = "header:X-Api-Key"',
  'response-headers = ["set X-Frame-Options: DENY", "add X-Route: admin {request_id}"]',
  "[[routes]]",
  'pool = "api"',
  "",
].join("\n");

describe("per pool and per route", () => {
  test("a route sets its own over its pool's; the view shows each where it was written", async () => {
    const config = resolveConfig([await readConfigFile(file("good.toml", GOOD))], env);
    const [admin, rest] = config.routes;
    expect(admin!.overrides).toMatchObject({ rateLimit: { count: 5, periodMs: 60_000 }, rateLimitBurst: 2, rateLimitKey: { kind: "header", name: "x-api-key" } });
    expect(rest!.overrides).toBeUndefined();
    const view = configView(config);
    expect(view["trusted-proxies"]).toEqual(["10.0.0.0/8", "fd00::/8"]);
    expect(view["rate-limit"]).toBe("");
    expect((view.pools as Record<string, unknown>).api).toMatchObject({
      allow: ["10.0.0.0/8", "2001:db8::/32"],
      "rate-limit": "100/s",
      "request-headers": { set: { "x-real-ip": "{client_ip}" }, remove: ["x-debug"] },
    });
    expect((view.routes as unknown[])[0]).toEqual({
      "path-prefix": "/admin/",
      pool: "api",
      allow: ["10.1.0.0/16"],
      "rate-limit": "5/m",
      "rate-limit-burst": 2,
      "rate-limit-key": "header:x-api-key",
      "response-headers": { set: { "x-frame-options": "DENY" }, add: { "x-route": "admin {request_id}" } },
    });
    expect((view.routes as unknown[])[1]).toEqual({ pool: "api" });
  });

  test("each malformed range, rate, key or rule is refused with its file:line and what to write", async () => {
    const path = file(
      "bad.toml",
      [
        'backends = ["http://10.0.0.9:1"]', // 1
        'trusted-proxies = ["10.0.0.0/33"]', // 2
        "[pools.api]", // 3
        'backends = ["http://10.0.0.1:1"]', // 4
        'deny = ["10.0.0.0/8", "not-an-address"]', // 5
        'rate-limit = "100/d"', // 6
        "[[routes]]", // 7
        'pool = "api"', // 8
        'rate-limit-key = "path"', // 9
        'request-headers = { set = { "Transfer-Encoding" = "x" } }', // 10
        'response-headers = ["set Connection: close", "add X-A: {nope}", "sett X-B: 1"]', // 11
        "policy = \"random\"", // 12
        "",
      ].join("\n"),
    );
    expect(checkConfig([await readConfigFile(path)], env).problems).toEqual([
      `${path}:2: trusted-proxies[0]: "10.0.0.0/33": the prefix length must be 0 to 32`,
      `${path}:5: pools.api.deny[1]: "not-an-address" is not an address or CIDR range (write 10.0.0.0/8, 192.0.2.7 or fd00::/8)`,
      `${path}:6: pools.api.rate-limit: "100/d" is not a rate; write 100/s, 20/m or 1000/h (at least 1)`,
      `${path}:9: routes[0].rate-limit-key: "path" is not a rate-limit key; write ip, header:NAME or cookie:NAME`,
      `${path}:10: routes[0].request-headers.set.Transfer-Encoding: Transfer-Encoding is a hop-by-hop or framing header, which lb sets itself; a rule may not touch it`,
      `${path}:11: routes[0].response-headers[0]: Connection is a hop-by-hop or framing header, which lb sets itself; a rule may not touch it`,
      `${path}:11: routes[0].response-headers[1]: {nope} is not a placeholder; known: {client_ip}, {request_id}, {host}`,
      `${path}:11: routes[0].response-headers[2]: "sett X-B: 1" is not a header rule; write "set Name: value", "add Name: value" or "remove Name"`,
      `${path}:12: routes[0].policy: set per pool or for the whole of lb, not per route; move it to [pools.NAME] or the top level`,
    ]);
  });

  test("the schema lets a route and a pool carry them, and only the top level trusted-proxies", () => {
    const schema = configSchema() as { properties: Record<string, { items?: { properties: object }; additionalProperties?: { properties: object } }> };
    const route = Object.keys(schema.properties.routes!.items!.properties);
    const pool = Object.keys(schema.properties.pools!.additionalProperties!.properties);
    const edge = ["allow", "deny", "rate-limit", "rate-limit-burst", "rate-limit-key", "request-headers", "response-headers"];
    expect(route).toEqual(expect.arrayContaining(edge));
    expect(pool).toEqual(expect.arrayContaining(edge));
    expect([...route, ...pool]).not.toContain("trusted-proxies");
    expect(route).not.toContain("policy");
  });
});

describe("the environment", () => {
  test("LB_ variables: lists comma-separated or one a line, one rule a line", () => {
    const vars = { LB_TRUSTED_PROXIES: "10.0.0.0/8,fd00::/8", LB_DENY: "192.0.2.0/24\n198.51.100.7", LB_REQUEST_HEADERS: "set X-A: {host}\nremove X-B", LB_RATE_LIMIT: "20/m" };
    const config = resolveConfig([{ source: "test", values: { backends: ["http://a:1"] } }, environmentLayer(vars)], env);
    const view = configView(config);
    expect([view["trusted-proxies"], view.deny, view["request-headers"], view["rate-limit"]]).toEqual([
      ["10.0.0.0/8", "fd00::/8"],
      ["192.0.2.0/24", "198.51.100.7/32"],
      { set: { "x-a": "{host}" }, remove: ["x-b"] },
      "20/m",
    ]);
  });
});

describe("the command line", () => {
  test("flags (repeatable lists and rules); a bad flag and lb validate of a bad file exit 2 with its place", async () => {
    const config = resolveConfig(
      [{ source: "command line", values: { backends: ["http://a:1"], allow: ["10.0.0.0/8,192.0.2.1", "2001:db8::/32"], "request-headers": ["set X-A: 1", "remove X-B"] } }],
      env,
    );
    expect(configView(config).allow).toEqual(["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);
    expect(config.requestHeaders).toEqual({ set: [["x-a", "1"]], add: [], remove: ["x-b"] });
    const flags = await runCommand(["--rate-limit", "ten/s", "--deny", "300.0.0.1", "http://a:1"]);
    expect(flags.code).toBe(2);
    expect(flags.stderr).toContain('command line: rate-limit: "ten/s" is not a rate');
    expect(flags.stderr).toContain('command line: deny[0]: "300.0.0.1" is not an address or CIDR range');
    const path = file("validate.toml", 'backends = ["http://a:1"]\n[pools.x]\nbackends = ["http://b:1"]\nrate-limit = "ten/s"\n');
    const validated = await runCommand(["validate", path]);
    expect(validated.code).toBe(2);
    expect(validated.stderr).toContain(`${path}:4: pools.x.rate-limit: "ten/s" is not a rate`);
  });

  test("lb validate refuses a range with host bits (10.0.0.1/8: the address, or the range?) and names the two it may mean", async () => {
    const path = file("hostbits.toml", 'backends = ["http://a:1"]\nallow = ["10.0.0.0/8", "10.0.0.1/8"]\ntrusted-proxies = ["fd00::1/8"]\ndeny = ["192.0.2.7/32"]\n');
    const validated = await runCommand(["validate", path]);
    expect(validated.code).toBe(2);
    expect(validated.stderr).toContain(`${path}:2: allow[1]: "10.0.0.1/8" has bits set past its prefix; write 10.0.0.0/8 for the range or 10.0.0.1 for the one address`);
    expect(validated.stderr).toContain(`${path}:3: trusted-proxies[0]: "fd00::1/8" has bits set past its prefix; write fd00::/8 for the range or fd00::1 for the one address`);
    expect(validated.stderr).not.toContain("deny");
  });
});
