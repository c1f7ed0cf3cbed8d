/** The --acme settings as the config reads them: names, defaults it brings, what it refuses, and the secret it hides. */
import { describe, expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../../src/config/load.ts";
import { acmeNames } from "../../src/config/types.ts";
import { configView } from "../../src/config/view.ts";
import { ROOT } from "../helpers.ts";

const env = { stdoutIsTTY: false };
const config = (values: Record<string, unknown>) => resolveConfig([{ source: "lb.toml", values: { backends: ["http://127.0.0.1:1"], ...values } }], env);
const problem = (values: Record<string, unknown>) => {
  try {
    config(values);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return null;
};

describe("--acme", () => {
  test("serves HTTPS on 443 and answers challenges on 80 unless the ports are given; names are lower-cased and kept once", () => {
    const acme = config({ acme: ["Example.COM", "www.example.com", "example.com"] });
    expect(acme).toMatchObject({ acme: ["example.com", "www.example.com"], port: 443, httpRedirectPort: 80 });
    expect(config({ acme: "example.com", port: 8443, "http-redirect-port": 8080 })).toMatchObject({ port: 8443, httpRedirectPort: 8080 });
    expect(config({}).port).toBe(8000);
  });

  test('"routes" takes every exact route host, not the wildcard ones, beside names listed', () => {
    const routed = config({
      acme: ["routes", "extra.example.com"],
      pools: { api: { backends: ["http://127.0.0.1:2"] }, web: { backends: ["http://127.0.0.1:3"] } },
      routes: [{ host: "api.example.com", pool: "api" }, { host: "*.example.com", pool: "web" }, { "path-prefix": "/", pool: "web" }],
    });
    expect(acmeNames(routed)).toEqual(["api.example.com", "extra.example.com"]);
    expect(problem({ acme: "routes" })).toContain('acme: "routes" takes the routes\' exact hosts, and no route has one');
  });

  test.each([
    [{ acme: "*.example.com" }, 'acme[0]: "*.example.com": wildcard certificates need the DNS-01 challenge, which lb does not do; list each name'],
    [{ acme: "10.0.0.1" }, 'acme[0]: "10.0.0.1": certificates from ACME are for DNS names, not IP addresses'],
    [{ acme: ["ok.example.com", "bad_name.example.com"] }, 'acme[1]: "bad_name.example.com" is not a DNS name such as example.com (or "routes")'],
    [{ acme: "example.com", "http-redirect-port": 0 }, "acme: the CA checks each name over plain HTTP; give --http-redirect-port a port"],
    [{ acme: "example.com", "acme-eab-kid": "kid-1" }, "acme-eab: give both --acme-eab-kid and --acme-eab-hmac, or neither"],
    [{ acme: "example.com", "acme-ca": "ftp://ca.example/dir" }, '"ftp://ca.example/dir" is not an ACME directory; write an https:// URL, or letsencrypt or letsencrypt-staging'],
    [{ acme: "example.com", "acme-email": "ops" }, '"ops" is not an email address'],
  ])("%p is refused: %s", (values, expected) => {
    expect(problem(values)).toContain(expected);
  });

  test("a wrong --acme is reported once, not again as TLS missing for the redirect port", () => {
    expect(problem({ acme: "*.example.com" })).not.toContain("http-redirect-port");
  });

  test("letsencrypt-staging is a shorthand; the EAB HMAC key is shown as [redacted]", () => {
    const acme = config({ acme: "example.com", "acme-ca": "letsencrypt-staging", "acme-eab-kid": "kid-1", "acme-eab-hmac": "c2VjcmV0LWtleQ" });
    expect(acme.acmeCa).toBe("https://acme-staging-v02.api.letsencrypt.org/directory");
    expect(config({ acme: "example.com" }).acmeCa).toBe("https://acme-v02.api.letsencrypt.org/directory");
    const view = configView(acme);
    expect(view).toMatchObject({ acme: ["example.com"], "acme-eab-kid": "kid-1", "acme-eab-hmac": "[redacted]" });
    expect(JSON.stringify(view)).not.toContain("c2VjcmV0LWtleQ");
  });
});

test("lb loads the ACME library only for --acme (it slows a start by about 0.1 s)", async () => {
  const loaded = Bun.spawnSync(
    ["bun", "-e", 'await import("./src/cli/commands.ts"); console.log(Object.keys(require.cache).filter((path) => path.includes("/src/acme/") || path.includes("acme-client")).length)'],
    { cwd: ROOT },
  );
  expect(loaded.stdout.toString().trim()).toBe("0");
});
