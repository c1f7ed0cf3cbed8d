import { envName, environmentLayer } from "../../src/config/environment.ts";
import { SETTINGS } from "../../src/config/settings.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkBackendUrl } from "../../src/config/backend-url.ts";
import { ConfigError, checkConfig, readConfigFile, resolveConfig } from "../../src/config/load.ts";
import { configView } from "../../src/config/view.ts";

const env = { stdoutIsTTY: false };
const resolve = (values: Record<string, unknown>, tty = false) =>
  resolveConfig([{ source: "test", values }], { stdoutIsTTY: tty });

describe("backend URLs", () => {
  test("normalise to the origin", () => {
    expect(checkBackendUrl("http://localhost:8080")).toEqual({ spec: { url: "http://localhost:8080", weight: 1 } });
    expect(checkBackendUrl("http://LOCALHOST:8080/")).toEqual({ spec: { url: "http://localhost:8080", weight: 1 } });
    expect(checkBackendUrl("localhost:8080")).toEqual({ spec: { url: "http://localhost:8080", weight: 1 } });
    expect(checkBackendUrl("https://app.internal")).toEqual({ spec: { url: "https://app.internal", weight: 1 } });
    expect(checkBackendUrl("http://[::1]:9000")).toEqual({ spec: { url: "http://[::1]:9000", weight: 1 } });
  });

  test("resolve in the fragment or a table marks a DNS name to re-resolve", () => {
    expect(checkBackendUrl("http://app.internal:8080#resolve")).toEqual({ spec: { url: "http://app.internal:8080", weight: 1, resolve: true } });
    expect(checkBackendUrl("http://10.0.0.1:8080#resolve")).toEqual({ error: expect.stringContaining("resolve needs a DNS name") });
    expect(resolveConfig([{ source: "t", values: { backends: [{ url: "http://app:80", resolve: true, weight: 2 }] } }], env).backends).toEqual([
      { url: "http://app", weight: 2, resolve: true },
    ]);
  });

  test("a weight in the fragment", () => {
    expect(checkBackendUrl("http://app:8080#weight=3")).toEqual({ spec: { url: "http://app:8080", weight: 3 } });
    expect(checkBackendUrl("http://app:8080", { weight: 7 })).toEqual({ spec: { url: "http://app:8080", weight: 7 } });
  });

  test.each([
    ["http://", "not a URL"],
    ["ftp://files:21", "backends must be http"],
    ["http://app:8080/api", "has a path or query"],
    ["http://app:8080?x=1", "has a path or query"],
    ["http://app:8080#weight=0", "weight must be a whole number from 1 to 1000"],
    ["http://app:8080#weight=2.5", "weight must be a whole number"],
    ["http://app:8080#wieght=2", 'unknown backend option "wieght"'],
    ["http://user:pw@app:8080", "credentials"],
    ["http://app:99999", "not a URL"],
  ])("%p is refused (%s)", (input, problem) => {
    const result = checkBackendUrl(input);
    expect("error" in result && result.error).toContain(problem);
  });
});

describe("resolveConfig", () => {
  test("defaults", () => {
    const config = resolve({ backends: ["http://a:1"] });
    expect(config).toEqual({
      port: 8000,
      host: "0.0.0.0",
      backends: [{ url: "http://a:1", weight: 1 }],
      healthPath: "/",
      healthInterval: 10_000,
      healthTimeout: 2_000,
      timeout: 60_000,
      connectTimeout: 3_000,
      upstreamIdleTimeout: 4_000,
      upstreamReadTimeout: 60_000,
      retries: 3,
      retryBudget: 20,
      drainTimeout: 10_000,
      policy: "round-robin",
      hashKey: { kind: "ip" },
      stickyCookie: "",
      slowStart: 0,
      healthMethod: "GET",
      healthStatus: [[200, 200]],
      healthBody: "",
      healthHeaders: [],
      healthRise: 1,
      healthFall: 1,
      healthDownInterval: 0,
      healthJitter: 10,
      outlierErrors: 5,
      outlierEjection: 30_000,
      outlierMaxEjected: 50,
      maxInflight: 0,
      compress: false,
      compressMinSize: 1024,
      maxBodySize: 1024 ** 3,
      maxConnections: 10_000,
      clientTimeout: 10_000,
      workers: 1,
      queueSize: 1000,
      queueTimeout: 10_000,
      admin: { host: "127.0.0.1", port: 7019 },
      adminToken: "",
      resolveInterval: 30_000,
      dnsServer: "",
      tlsCert: "",
      tlsKey: "",
      tlsSni: [],
      acme: [],
      acmeEmail: "",
      acmeCa: "https://acme-v02.api.letsencrypt.org/directory",
      acmeCaCert: "",
      acmeEabKid: "",
      acmeEabHmac: "",
      stateDir: expect.stringMatching(/\/lb$/),
      httpRedirectPort: 0,
      http2: "auto",
      http3: false,
      backendCa: "",
      backendInsecure: false,
      logLevel: "info",
      logFormat: "json",
      accessLog: true,
      accessLogFormat: "",
      accessLogFile: "",
      pools: [],
      routes: [],
      tcp: [],
      hooks: "",
      hooksTimeout: 1_000,
      otlpEndpoint: "",
      otlpProtocol: "http/protobuf",
      otlpHeaders: [],
      traceSample: { sampler: "parentbased_traceidratio", ratio: 1 },
      traceServiceName: "lb",
      acceptProxy: false,
      proxyTrusted: [{ prefix: new Uint8Array([127, 0, 0, 0]), bits: 8 }, { prefix: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), bits: 128 }],
      sendProxy: "",
      trustedProxies: [],
      allow: [],
      deny: [],
      rateLimit: null,
      rateLimitBurst: 0,
      rateLimitKey: { kind: "ip" },
      requestHeaders: { set: [], add: [], remove: [] },
      responseHeaders: { set: [], add: [], remove: [] },
    });
    expect(resolve({ backends: ["http://a:1"] }, true).logFormat).toBe("pretty");
  });

  test("later layers override earlier ones", () => {
    const config = resolveConfig(
      [
        { source: "lb.toml", values: { port: 9000, "health-interval": "5s", backends: ["http://a:1"] } },
        { source: "command line", values: { port: "9001" } },
      ],
      env,
    );
    expect(config.port).toBe(9001);
    expect(config.healthInterval).toBe(5000);
    expect(config.backends).toEqual([{ url: "http://a:1", weight: 1 }]);
  });

  test("text from the command line and typed values from files both parse", () => {
    const config = resolve({
      backends: "http://a:1,http://b:2",
      port: "0",
      timeout: 1.5,
      "access-log": "false",
      "log-level": "debug",
    });
    expect(config.backends.map((b) => b.url)).toEqual(["http://a:1", "http://b:2"]);
    expect(config.port).toBe(0);
    expect(config.timeout).toBe(1500);
    expect(config.accessLog).toBe(false);
    expect(config.logLevel).toBe("debug");
  });

  test("backends may be written as tables with a url and a weight", () => {
    expect(resolve({ backends: [{ url: "http://a:1", weight: 4 }, "http://b:2#weight=2"] }).backends).toEqual([
      { url: "http://a:1", weight: 4 },
      { url: "http://b:2", weight: 2 },
    ]);
    expect(() => resolve({ backends: [{ url: "http://a:1", wieght: 4 }] })).toThrow("backends[0].wieght: not a backend setting");
    expect(() => resolve({ backends: ["http://a:1", { url: "nope://x" }, { url: "http://b:1", weight: 0 }] })).toThrow(
      'backends[1].url: "nope://x" uses nope; backends must be http://, https:// or tcp://; test: backends[2].weight: weight must be a whole number from 1 to 1000',
    );
  });

  test("pool settings: policy, hash key, statuses, headers, percentages", () => {
    const config = resolve({
      backends: ["http://a:1"],
      policy: "hash",
      "hash-key": "cookie:sid",
      "health-status": "200-299, 301,302",
      "health-header": ["Host: app.internal", "X-Probe: lb"],
      "health-jitter": "25%",
      "sticky-cookie": "lb_id",
    });
    expect(config.policy).toBe("hash");
    expect(config.hashKey).toEqual({ kind: "cookie", name: "sid" });
    expect(config.healthStatus).toEqual([[200, 299], [301, 301], [302, 302]]);
    expect(config.healthHeaders).toEqual([["Host", "app.internal"], ["X-Probe", "lb"]]);
    expect(config.healthJitter).toBe(25);
    expect(config.stickyCookie).toBe("lb_id");
    expect(resolve({ backends: ["http://a:1"], "health-header": { Host: "h" }, "health-status": 204 }).healthHeaders).toEqual([["Host", "h"]]);
  });

  test("every problem is reported at once, each with its place", () => {
    let message = "";
    try {
      resolve({ port: "eighty", "health-interval": "soon", backends: ["http://ok:1", "nope://x", "http://ok:1"], colour: "red" });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain('test: "colour" is not a setting');
    expect(message).toContain('test: port: "eighty" is not a port');
    expect(message).toContain('test: health-interval: "soon" is not a duration');
    expect(message).toContain("test: backends[1]: \"nope://x\" uses nope");
    expect(message).toContain("test: backends[2]: http://ok:1 is listed twice");
    expect(message).not.toContain("\n");
  });

  test.each([
    [{ "health-path": "health" }, "must start with /"],
    [{ "log-level": "loud" }, "is not one of error, warn, info, debug"],
    [{ "log-format": "xml" }, "is not one of pretty, json"],
    [{ "health-interval": "10ms" }, "too short"],
    [{ retries: "-1" }, "is not a retry count"],
    [{ "access-log": "maybe" }, "is not true or false"],
    [{ host: "" }, "host: needs a value"],
    [{ policy: "fastest" }, "is not one of round-robin, least-connections, random, p2c, ewma, hash"],
    [{ "hash-key": "header:" }, "is not a hash key"],
    [{ "health-status": "299-200" }, "is not a status list"],
    [{ "health-status": "600" }, "is not a status list"],
    [{ "health-header": "NoColon" }, 'is not a header; write "Name: value"'],
    [{ "health-jitter": "150" }, "is not a percentage"],
    [{ "sticky-cookie": "a b" }, "is not a cookie name"],
    [{ "client-timeout": "300s" }, "5m is too long; the most is 255s"],
    [{ "client-timeout": "500ms" }, "is too short"],
    [{ "max-connections": "lots" }, "is not a connection limit"],
  ])("%p is refused", (values, problem) => {
    expect(() => resolve({ backends: ["http://a:1"], ...values })).toThrow(problem);
  });

  test("sizes with units", () => {
    const size = (v: unknown) => resolve({ backends: ["http://a:1"], "max-body-size": v }).maxBodySize;
    expect([size("512k"), size("10mb"), size("1G"), size(2048), size("0")]).toEqual([524_288, 10_485_760, 1_073_741_824, 2048, 0]);
    expect(() => size("lots")).toThrow('"lots" is not a size');
    expect(() => size("5 parsecs")).toThrow("is not a size");
  });

  test("SNI certificates from config-file tables or name=cert,key text", () => {
    const config = resolve({
      backends: ["http://a:1"],
      "tls-cert": "/c.pem",
      "tls-key": "/k.pem",
      "tls-sni": [{ "server-name": "api.example.com", cert: "/api.pem", key: "/api.key" }, "www.example.com=/www.pem,/www.key"],
    });
    expect(config.tlsSni).toEqual([
      { serverName: "api.example.com", cert: "/api.pem", key: "/api.key" },
      { serverName: "www.example.com", cert: "/www.pem", key: "/www.key" },
    ]);
    expect(() => resolve({ backends: ["http://a:1"], "tls-sni": ["x=/a.pem,/a.key"] })).toThrow("tls-sni: give the default certificate too");
    expect(() => resolve({ backends: ["http://a:1"], "tls-cert": "/c", "tls-key": "/k", "tls-sni": [{ cert: "/x" }] })).toThrow("tls-sni[0]: write server.name=cert.pem,key.pem");
  });

  test("the admin address, off, and the token rule beyond loopback", () => {
    expect(resolve({ backends: ["http://a:1"], admin: "off" }).admin).toBeNull();
    expect(resolve({ backends: ["http://a:1"], admin: "[::1]:9191" }).admin).toEqual({ host: "::1", port: 9191 });
    expect(() => resolve({ backends: ["http://a:1"], admin: "9090" })).toThrow('"9090" is not an address');
    expect(() => resolve({ backends: ["http://a:1"], admin: "0.0.0.0:9090" })).toThrow(
      "admin: 0.0.0.0 is not a loopback address, so the admin API needs a token",
    );
    expect(resolve({ backends: ["http://a:1"], admin: "0.0.0.0:9090", "admin-token": "s3cret" }).adminToken).toBe("s3cret");
    const file = { source: "test", values: { backends: ["http://a:1"], admin: "10.0.0.1:9090" } };
    const fromEnv = resolveConfig([file, environmentLayer({ LB_ADMIN_TOKEN: "from-env" })], { stdoutIsTTY: false });
    expect(fromEnv.adminToken).toBe("from-env");
  });

  test("every setting from the environment (LB_ + its name); flags win over it, it wins over the file", () => {
    const file = { source: "lb.toml", values: { backends: ["http://file:1"], port: 1000, "health-path": "/file", retries: 1 } };
    const vars = { LB_PORT: "2000", LB_HEALTH_PATH: "/env", LB_BACKENDS: "http://env:1,http://env:2", LB_ACCESS_LOG: "false", LB_HEALTH_HEADER: "Host: a\nX-A: b", LB_RETRIES: "" };
    const flags = { source: "command line", values: { port: "3000" } };
    const config = resolveConfig([file, environmentLayer(vars), flags], { stdoutIsTTY: false });
    expect(config.port).toBe(3000);
    expect(config.healthPath).toBe("/env");
    expect(config.backends.map((b) => b.url)).toEqual(["http://env:1", "http://env:2"]);
    expect(config.accessLog).toBe(false);
    expect(config.healthHeaders).toEqual([["Host", "a"], ["X-A", "b"]]);
    expect(config.retries).toBe(1); // an empty variable is unset
    expect(() => resolveConfig([file, environmentLayer({ LB_PORT: "high", LB_ADMIN_TOKEN: "  " })], { stdoutIsTTY: false })).toThrow(
      'environment LB_PORT: port: "high" is not a port',
    );
    for (const setting of SETTINGS) expect(envName(setting)).toMatch(/^LB_[A-Z0-9_]+$/);
  });

  test("no backends at all says how to give them", () => {
    expect(() => resolve({})).toThrow("no backends: give their URLs");
  });
});

describe("config files", () => {
  const dir = mkdtempSync(join(tmpdir(), "lb-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const expected = {
    port: 9000,
    backends: [
      { url: "http://a:1", weight: 1 },
      { url: "http://b:2", weight: 3 },
    ],
    healthInterval: 2000,
    accessLog: false,
  };

  test.each([
    ["lb.toml", 'port = 9000\nhealth-interval = "2s"\naccess-log = false\nbackends = ["http://a:1", { url = "http://b:2", weight = 3 }]\n'],
    ["lb.yaml", "port: 9000\nhealth-interval: 2s\naccess-log: false\nbackends:\n  - http://a:1\n  - url: http://b:2\n    weight: 3\n"],
    ["lb.json", '{"port": 9000, "health-interval": 2, "access-log": false, "backends": ["http://a:1", {"url": "http://b:2", "weight": 3}]}'],
  ])("%s reads the same settings", async (name, text) => {
    const config = resolveConfig([await readConfigFile(file(name, text))], env);
    expect(config).toMatchObject(expected);
  });

  test("a missing file, a bad extension and bad syntax each give one clear line", async () => {
    expect(readConfigFile(join(dir, "absent.toml"))).rejects.toThrow("cannot read the config file (no such file)");
    expect(readConfigFile(file("lb.ini", "port=1"))).rejects.toThrow("name the file .toml, .yaml, .yml or .json");
    expect(readConfigFile(file("bad.toml", "port = = 1"))).rejects.toThrow("not valid TOML");
    expect(readConfigFile(file("list.json", "[1,2]"))).rejects.toThrow("must be a table of settings");
  });

  test("problems in a file name the file and the line; a misspelt key gets a guess, an underscore a hint", async () => {
    const layer = await readConfigFile(file("typo.toml", 'backends = ["http://a:1"]\nprot = 1\nhealth_path = "/up"\ncolour = "red"\n'));
    const path = join(dir, "typo.toml");
    expect(() => resolveConfig([layer], env)).toThrow(`${path}:2: "prot" is not a setting; did you mean port?`);
    expect(() => resolveConfig([layer], env)).toThrow(`${path}:3: "health_path" is not a setting; settings use dashes: write health-path`);
    expect(() => resolveConfig([layer], env)).toThrow(`${path}:4: "colour" is not a setting; lb schema lists them all`);
    const yaml = await readConfigFile(file("lines.yaml", "backends:\n  - http://a:1\nport: high\n"));
    expect(() => resolveConfig([yaml], env)).toThrow(`${join(dir, "lines.yaml")}:3: port: "high" is not a port`);
    const json = await readConfigFile(file("lines.json", '{\n  "backends": ["http://a:1"],\n  "retries": -1\n}\n'));
    expect(() => resolveConfig([json], env)).toThrow(`${join(dir, "lines.json")}:3: retries:`);
  });

  /** Every problem found in a file. */
  const problemsIn = async (name: string, text: string) => checkConfig([await readConfigFile(file(name, text))], env).problems;

  test("a syntax error names its line (Bun's parsers give none), in TOML and YAML", async () => {
    const unterminated = file("syntax.toml", 'port = 8000\nhost = "0.0.0.0\nbackends = ["http://a:1"]\n');
    expect(readConfigFile(unterminated)).rejects.toThrow(`${unterminated}:2: not valid TOML: Unterminated string`);
    // A multi-line array is passed over while it is open: the line named is the one at fault.
    const unquoted = file("unquoted.toml", 'backends = [\n  "http://a:1",\n  http://b:2,\n]\n');
    expect(readConfigFile(unquoted)).rejects.toThrow(`${unquoted}:3: not valid TOML: `);
    const twice = file("twice.toml", 'port = 1\nhost = "a"\nport = 2\n');
    expect(readConfigFile(twice)).rejects.toThrow(`${twice}:3: not valid TOML: Cannot redefine key 'port'`);
    const yaml = file("indent.yaml", "port: 1\nbackends:\n  - http://a:1\n  b: 2\n");
    expect(readConfigFile(yaml)).rejects.toThrow(`${yaml}:4: not valid YAML: `);
  });

  test("problems in [pools.NAME] and [[routes]] name the line of their key, or of their table when the key is missing", async () => {
    const problems = await problemsIn(
      "routing.toml",
      [
        'backends = ["http://10.0.0.9:1"]', // 1
        "[pools.api]", // 2
        'backends = ["http://10.0.0.1:1"]', // 3
        'timeout = "soon"', // 4
        "[pools.empty]", // 5
        'policy = "random"', // 6
        "[[routes]]", // 7
        'pool = "api"', // 8
        "[[routes]]", // 9
        'hst = "a"', // 10
        'pool = "web"', // 11
        "[[routes]]", // 12
        'path-prefix = "/x/"', // 13
        "",
      ].join("\n"),
    );
    const path = join(dir, "routing.toml");
    expect(problems).toEqual([
      `${path}:4: pools.api.timeout: "soon" is not a duration; write 250ms, 10s, 1m30s, 1h, 1d or a number of seconds`,
      `${path}:5: pools.empty.backends: a pool needs backends, e.g. backends = ["http://10.0.0.1:8080"]`,
      `${path}:10: routes[1].hst: not a route condition or setting; did you mean host?`,
      `${path}:11: routes[1].pool: no pool is named "web"; the pools are default, api, empty`,
      `${path}:12: routes[2].pool: missing; write pool = "NAME" (a [pools.NAME] table, or "default")`,
    ]);
  });

  test("a problem that follows from another is not reported twice", async () => {
    const problems = await problemsIn(
      "cascade.toml",
      '[pools.api]\nbackends = ["ftp://a:1"]\n[[routes]]\npath-prefix = "api"\nstrip-prefix = true\npool = "api"\n',
    );
    const path = join(dir, "cascade.toml");
    // Not also "pools.api.backends: a pool needs backends", "strip-prefix: needs path-prefix" or "no pool is named".
    expect(problems).toEqual([
      `${path}:2: pools.api.backends[0]: "ftp://a:1" uses ftp; backends must be http://, https:// or tcp://`,
      `${path}:4: routes[0].path-prefix: "api" must start with "/", e.g. "/api/"`,
    ]);
  });
});

describe("the config as GET /api/config shows it", () => {
  test("each value as the file writes it: statuses, hash key, sizes, durations, the admin address", () => {
    const view = configView(
      resolve({
        backends: ["http://a:1"],
        "health-status": "200-299,304",
        "hash-key": "header:X-User",
        "max-body-size": "10mb",
        "health-interval": "90s",
        admin: "[::1]:9090",
      }),
    );
    expect(view).toMatchObject({
      "health-status": "200-299,304",
      "hash-key": "header:X-User",
      "max-body-size": "10mb",
      "health-interval": "90s",
      admin: "[::1]:9090",
    });
    // What a default looks like written: one status, "ip", 1 GiB; a size that is no whole unit stays a number.
    expect(configView(resolve({ backends: ["http://a:1"] }))).toMatchObject({ "health-status": "200", "hash-key": "ip", "max-body-size": "1gb" });
    expect(configView(resolve({ backends: ["http://a:1"], "max-body-size": 1000 }))["max-body-size"]).toBe(1000);
  });

  test("health-down-interval is the one in effect: the health interval unless set; a pool shows its own where it differs", () => {
    const config = resolve({
      backends: ["http://a:1"],
      "health-interval": "5s",
      pools: { api: { backends: ["http://b:1"], "health-interval": "1s" }, web: { backends: ["http://c:1"], "health-status": 204 } },
      routes: [{ "path-prefix": "/api/", pool: "api" }],
    });
    const view = configView(config) as { "health-down-interval": string; pools: Record<string, Record<string, unknown>> };
    expect(view["health-down-interval"]).toBe("5s");
    expect(view.pools.api).toEqual({ backends: [{ url: "http://b:1", weight: 1 }], "health-interval": "1s", "health-down-interval": "1s" });
    expect(view.pools.web).toEqual({ backends: [{ url: "http://c:1", weight: 1 }], "health-status": "204" });
    expect(configView(resolve({ backends: ["http://a:1"], "health-down-interval": "2s" }))["health-down-interval"]).toBe("2s");
  });
});
