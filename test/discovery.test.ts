/** DNS discovery against a real (tiny) DNS server on loopback and backends on two loopback addresses. */
import { afterAll, expect, test } from "bun:test";
import { addressUrl } from "../src/pool/discovery.ts";
import { startDnsServer } from "./dns-server.ts";
import { startBackend, startTestLb, waitFor } from "./helpers.ts";

const dns = await startDnsServer();
afterAll(() => dns.stop());

test("backend URLs for addresses keep the scheme and port", () => {
  expect(addressUrl({ url: "http://app.internal:8080", weight: 1 }, "10.1.2.3")).toBe("http://10.1.2.3:8080");
  expect(addressUrl({ url: "https://app.internal", weight: 1 }, "fd00::5")).toBe("https://[fd00::5]");
});

test("the pool follows DNS: new addresses join, vanished ones drain, a DNS outage keeps the last good set", async () => {
  // Two backends on the same port at two loopback addresses, as two pods behind one name would be.
  const first = startBackend("pod-1");
  const servers = [first, startBackendAt("127.0.0.2", first.port, "pod-2")];
  dns.records.set("app.test", ["127.0.0.1"]);
  const lb = await startTestLb([`http://app.test:${first.port}#resolve`], { "dns-server": dns.address, "resolve-interval": "100ms", "health-interval": "100ms" });
  try {
    const answers = async (n: number) => Promise.all(Array.from({ length: n }, async () => (await fetch(`${lb.url}/`)).text()));
    expect(new Set(await answers(4))).toEqual(new Set(["backend pod-1"]));

    dns.records.set("app.test", ["127.0.0.1", "127.0.0.2"]);
    await waitFor(async () => (await answers(4)).includes("backend pod-2"), "the new address to take traffic", 3000);

    dns.records.set("app.test", ["127.0.0.2"]);
    await waitFor(() => lb.lb.pool.backends.length === 1, "the vanished address to be removed", 3000);
    expect(new Set(await answers(4))).toEqual(new Set(["backend pod-2"]));

    dns.silence();
    await waitFor(() => lb.logs.some((l) => l.includes("DNS lookup of app.test failed")), "the outage to be noticed", 8000);
    expect(new Set(await answers(4))).toEqual(new Set(["backend pod-2"]));
    expect(lb.logs.filter((l) => l.includes("DNS lookup of app.test failed"))).toHaveLength(1);
  } finally {
    await lb.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
}, 20_000);

function startBackendAt(hostname: string, port: number, name: string) {
  const server = Bun.serve({ hostname, port, development: false, fetch: () => new Response(`backend ${name}`) });
  return { stop: () => server.stop(true) };
}
