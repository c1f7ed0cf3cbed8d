/** `lb validate` on [[tcp]]: every problem with its file:line, and a sound file passes. */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig } from "../../src/config/load.ts";
import { configView } from "../../src/config/view.ts";
import { runCommand } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "lb-l4-config-"));

async function validate(name: string, text: string) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, ...(await runCommand(["validate", path])) };
}

test("a sound [[tcp]] file passes", async () => {
  const { code, stdout, stderr } = await validate(
    "good.toml",
    `port = 8000
[pools.web]
backends = ["http://10.0.0.1:8080"]
[pools.db]
backends = ["tcp://10.0.0.5:5432", "tcp://10.0.0.6:5432"]
[pools.shop]
backends = ["tcp://10.0.1.5:443"]
health-path = "/healthz"
[[tcp]]
listen = "0.0.0.0:5432"
pool = "db"
[[tcp]]
listen = "0.0.0.0:8443"
sni = ["shop.example.com", "*.shop.example.com"]
pool = "shop"
idle-timeout = "5m"
`,
  );
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  expect(stdout).toContain("OK (3 pools (web: 1 backend, db: 2 backends, shop: 1 backend), 0 routes, 2 tcp listeners, port 8000)");
});

test("each [[tcp]] problem is named with its file and line", async () => {
  const { path, code, stderr } = await validate(
    "bad.toml",
    `port = 8000
backends = ["http://10.0.0.1:8080"]
[pools.db]
backends = ["tcp://10.0.0.5:5432"]
[pools.mixed]
backends = ["http://10.0.0.7:80", "tcp://10.0.0.8:80"]
[pools.api]
backends = ["http://10.0.0.9:80"]
[[routes]]
path-prefix = "/db/"
pool = "db"
[[tcp]]
listen = "0.0.0.0:5432"
pool = "nope"
[[tcp]]
listen = "0.0.0.0:5433"
pool = "api"
[[tcp]]
listen = "0.0.0.0:8443"
sni = ["a.example.com"]
pool = "db"
[[tcp]]
listen = "0.0.0.0:8443"
sni = ["A.example.com"]
pool = "db"
[[tcp]]
listen = "localhost"
pool = "db"
[[tcp]]
listen = "127.0.0.1:8000"
pool = "db"
[[tcp]]
listen = "127.0.0.1:5432"
pool = "db"
[[tcp]]
listen = "0.0.0.0:9000"
pool = "db"
[[tcp]]
listen = "0.0.0.0:9000"
pool = "db"
sni = ["*.bad..name"]
[[tcp]]
listen = "0.0.0.0:9001"
pol = "db"
`,
  );
  expect(code).toBe(2);
  expect(stderr.trim().split("\n").sort()).toEqual(
    [
      `${path}:6: pools.mixed.backends: tcp://10.0.0.8:80 is a tcp:// backend in an HTTP pool; a pool's backends are all tcp:// or all http(s)://`,
      `${path}:11: routes[0].pool: pool db has tcp:// backends; HTTP routes go to HTTP pools, [[tcp]] entries to TCP ones`,
      `${path}:14: tcp[0].pool: no pool is named "nope"; the pools are default, db, mixed, api`,
      `${path}:17: tcp[1].pool: pool api is an HTTP pool (http:// backends); [[tcp]] relays to tcp:// backends: backends = ["tcp://10.0.0.5:5432"]`,
      `${path}:24: tcp[3].sni: "a.example.com" is taken by tcp[2] on 0.0.0.0:8443 already`,
      `${path}:27: tcp[4].listen: "localhost" is not an address; write listen = "0.0.0.0:5432" (HOST:PORT, [::]:PORT for IPv6)`,
      `${path}:30: tcp[5].listen: 127.0.0.1:8000 is lb's HTTP port (0.0.0.0:8000); choose another port`,
      `${path}:33: tcp[6].listen: 127.0.0.1:5432 takes the port of 0.0.0.0:5432 (another [[tcp]] listener)`,
      `${path}:41: tcp[8].sni: "*.bad..name" is not a server name; write exact names or wildcards, e.g. sni = ["shop.example.com", "*.example.com"]`,
      `${path}:42: tcp[9].pool: missing; write pool = "NAME", a [pools.NAME] table of tcp:// backends`,
      `${path}:44: tcp[9].pol: not a [[tcp]] key; did you mean pool?`,
    ].sort(),
  );
});

test("GET /api/config shows [[tcp]] as the file writes it", () => {
  const config = resolveConfig(
    [
      {
        source: "test",
        values: {
          backends: ["http://10.0.0.1:8080"],
          pools: { db: { backends: ["tcp://10.0.0.5:5432"] } },
          tcp: [{ listen: "[::]:5432", pool: "db", sni: ["DB.example.com"], "idle-timeout": "90s" }, { listen: "0.0.0.0:5433", pool: "db" }],
        },
      },
    ],
    { stdoutIsTTY: false },
  );
  expect(configView(config).tcp).toEqual([
    { listen: "[::]:5432", pool: "db", sni: ["db.example.com"], "idle-timeout": "90s" },
    { listen: "0.0.0.0:5433", pool: "db", "idle-timeout": "1h" },
  ]);
});
