/** Routes and named pools without sockets: the route table's choices, and what the config file's sections accept. */
import { describe, expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../../src/config/load.ts";
import { fallbackPool, namedPools } from "../../src/config/pools.ts";
import { RouteTable, hostName, stripPrefix } from "../../src/routing/routes.ts";

const resolve = (values: Record<string, unknown>) => resolveConfig([{ source: "lb.toml", values }], { stdoutIsTTY: false });
const problemsOf = (values: Record<string, unknown>) => {
  try {
    resolve(values);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error("the config was accepted");
};
const request = (path: string, headers: Record<string, string> = {}, method = "GET") => ({
  method,
  path,
  headers: new Headers(headers),
  host: headers.host ?? null,
});

describe("the route table", () => {
  const table = new RouteTable(
    [
      { host: "api.example.com", pool: "api" },
      { host: "*.shop.example", pool: "shop" },
      { pathPrefix: "/api/", stripPrefix: true, pool: "api" },
      { headers: [["x-canary", "1"]], methods: ["GET", "HEAD"], pool: "canary" },
      { pathPrefix: "/static/", pool: "static" },
    ],
    null,
  );

  test("the first route whose conditions all hold wins", () => {
    expect(table.match(request("/x", { host: "api.example.com" }))).toMatchObject({ pool: "api", path: "/x" });
    expect(table.match(request("/api/users?id=1", { host: "api.example.com" }))).toMatchObject({ pool: "api", path: "/api/users?id=1" });
    expect(table.match(request("/api/users?id=1", { host: "www.example.com" }))).toMatchObject({ pool: "api", path: "/users?id=1" });
    expect(table.match(request("/static/a.css", { "x-canary": "1" }))).toMatchObject({ pool: "canary", path: "/static/a.css" });
    expect(table.match(request("/static/a.css", { "x-canary": "1" }, "POST"))).toMatchObject({ pool: "static", path: "/static/a.css" });
  });

  test("hosts compare without case, port or trailing dot; a wildcard takes subdomains only", () => {
    expect(table.match(request("/", { host: "API.Example.COM:8443" }))?.pool).toBe("api");
    expect(table.match(request("/", { host: "api.example.com." }))?.pool).toBe("api");
    expect(table.match(request("/", { host: "a.shop.example" }))?.pool).toBe("shop");
    expect(table.match(request("/", { host: "a.b.shop.example" }))?.pool).toBe("shop");
    expect(table.match(request("/", { host: "shop.example" }))).toBeNull();
    expect(table.match(request("/", { host: "evilshop.example" }))).toBeNull();
    expect(hostName("[::1]:8000")).toBe("[::1]");
    expect(hostName(null)).toBe("");
  });

  test("a header must have exactly the value; no route and no fallback is null; a fallback takes the rest", () => {
    expect(table.match(request("/", { "x-canary": "yes" }))).toBeNull();
    expect(new RouteTable([{ pathPrefix: "/a/", pool: "a" }], "web").match(request("/b"))).toMatchObject({ pool: "web", path: "/b" });
  });

  test("a stripped prefix leaves a path that starts with /", () => {
    expect(stripPrefix("/api/users", "/api/")).toBe("/users");
    expect(stripPrefix("/api", "/api")).toBe("/");
    expect(stripPrefix("/api?x=1", "/api")).toBe("/?x=1");
    expect(stripPrefix("/api/", "/api/")).toBe("/");
  });
});

describe("pools and routes in the config file", () => {
  const example = {
    policy: "round-robin",
    pools: {
      api: { backends: ["http://10.0.0.1:8080", "http://10.0.0.2:8080"], policy: "least-connections", "health-path": "/healthz", retries: 1 },
      web: { backends: ["http://10.0.0.3:8080"] },
    },
    routes: [
      { host: "api.example.com", pool: "api" },
      { "path-prefix": "/api/", "strip-prefix": true, pool: "api" },
      { pool: "web" },
    ],
  };

  test("the issue's example: each pool has its own settings, the top level gives the rest", () => {
    const config = resolve(example);
    const pools = namedPools(config);
    expect(pools.map((p) => p.name)).toEqual(["api", "web"]);
    expect(pools[0]!.config).toMatchObject({ policy: "least-connections", healthPath: "/healthz", retries: 1 });
    expect(pools[1]!.config).toMatchObject({ policy: "round-robin", healthPath: "/", retries: 3, backends: [{ url: "http://10.0.0.3:8080", weight: 1 }] });
    expect(config.routes[1]).toEqual({ pathPrefix: "/api/", stripPrefix: true, pool: "api" });
  });

  test("top-level backends are the pool named default; requests no route takes go there", () => {
    const config = resolve({ backends: ["http://10.0.0.9:1"], pools: { api: { backends: ["http://10.0.0.1:1"] } }, routes: [{ "path-prefix": "/api/", pool: "api" }] });
    expect(namedPools(config).map((p) => p.name)).toEqual(["default", "api"]);
    expect(fallbackPool(config)).toBe("default");
    expect(namedPools(resolve({ backends: ["http://10.0.0.9:1"] })).map((p) => p.name)).toEqual(["default"]);
    // Named pools only: what no route takes gets lb's 404.
    expect(fallbackPool(resolve({ pools: { api: { backends: ["http://10.0.0.1:1"] } }, routes: [{ "path-prefix": "/api/", pool: "api" }] }))).toBeNull();
  });

  test("every problem is reported with its place", () => {
    const message = problemsOf({
      pools: {
        api: { backends: ["http://10.0.0.1:8080"], polcy: "ewma", port: 1 },
        web: { backends: ["http://10.0.0.1:8080"], timeout: "soon" },
        empty: {},
      },
      routes: [{ pool: "apx" }, { "path-prefix": "api", pool: "api" }, { host: "http://x.com", pool: "web" }, { hst: "a", pool: "api" }, { "strip-prefix": true, pool: "web" }],
    });
    for (const expected of [
      "lb.toml: pools.api.polcy: not a pool setting; did you mean policy?",
      "lb.toml: pools.api.port: set for the whole of lb only, not per pool",
      "lb.toml: pools.web.timeout: \"soon\" is not a duration",
      "lb.toml: pools.empty.backends: a pool needs backends",
      "lb.toml: routes[1].path-prefix: \"api\" must start with \"/\"",
      "lb.toml: routes[2].host: \"http://x.com\" is not a host name",
      "lb.toml: routes[3].hst: not a route condition or setting; did you mean host?",
      "lb.toml: routes[4].strip-prefix: needs path-prefix",
    ]) {
      expect(message).toContain(expected);
    }
  });

  test("routes must name pools that exist, a backend belongs to one pool, and several pools need routes", () => {
    expect(problemsOf({ pools: { api: { backends: ["http://10.0.0.1:1"] } }, routes: [{ pool: "apx" }] })).toContain(
      'lb.toml: routes[0].pool: no pool is named "apx"; the pools are api',
    );
    // Reported together with the file's other problems, not only once those are fixed.
    const together = problemsOf({ port: "high", pools: { api: { backends: ["http://10.0.0.1:1"] } }, routes: [{ pool: "apx" }] });
    expect(together).toContain("port: ");
    expect(together).toContain('lb.toml: routes[0].pool: no pool is named "apx"');
    expect(problemsOf({ backends: ["http://10.0.0.1:1"], pools: { api: { backends: ["http://10.0.0.1:1"] } } })).toContain(
      "pools.api.backends: http://10.0.0.1:1 is in pool default too; a backend belongs to one pool",
    );
    expect(problemsOf({ pools: { a: { backends: ["http://10.0.0.1:1"] }, b: { backends: ["http://10.0.0.2:1"] } } })).toContain(
      "routes: 2 pools (a, b) but no routes",
    );
    expect(problemsOf({ pools: { default: { backends: ["http://10.0.0.1:1"] } } })).toContain('pools.default: "default" is the pool the top-level backends form');
  });

  test("one named pool and no routes: it takes every request", () => {
    const config = resolve({ pools: { only: { backends: ["http://10.0.0.1:1"] } } });
    expect(namedPools(config).map((p) => p.name)).toEqual(["only"]);
  });
});
