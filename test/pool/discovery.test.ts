/** DNS discovery against a real (tiny) DNS server on loopback and backends on two loopback addresses. */
import { afterAll, expect, test } from "bun:test";
import { addressUrl } from "../../src/pool/discovery.ts";
import { startDnsServer } from "../dns-server.ts";
import { startBackend, startTestLb, waitFor } from "../helpers.ts";

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

test("a name whose addresses all change at once: the old one serves until a new one passes its check, then drains out", async () => {
  const first = startBackend("pod-1");
  const checked = Promise.withResolvers<void>(); // the new address's health check is held until the test lets it pass
  const second = Bun.serve({
    hostname: "127.0.0.2",
    port: first.port,
    development: false,
    fetch: async (request) => {
      if (new URL(request.url).pathname === "/health") await checked.promise;
      return new Response("backend pod-2");
    },
  });
  const next = `http://127.0.0.2:${first.port}`;
  const names = await startDnsServer(); // its own: the test above silences the shared one
  names.records.set("swap.test", ["127.0.0.1"]);
  const lb = await startTestLb([`http://swap.test:${first.port}#resolve`], {
    "dns-server": names.address,
    "resolve-interval": "100ms",
    "health-interval": "1m",
    "health-path": "/health",
    "drain-timeout": "30s",
  });
  const answer = async () => {
    const response = await fetch(`${lb.url}/`);
    return `${response.status} ${await response.text()}`;
  };
  try {
    expect(await answer()).toBe("200 backend pod-1");
    names.records.set("swap.test", ["127.0.0.2"]);
    await waitFor(() => lb.lb.pool.find(next), "the new address to join", 3000);
    // Not in rotation yet: the address DNS no longer gives is all there is, and it goes on answering.
    expect(new Set(await Promise.all(Array.from({ length: 10 }, answer)))).toEqual(new Set(["200 backend pod-1"]));
    expect(lb.logs).toContainEqual(expect.stringContaining(`gone from swap.test, keep taking requests until another backend is in rotation`));
    checked.resolve();
    await waitFor(() => lb.lb.pool.backends.map((b) => b.url).join() === next, "the old address to drain out", 5000);
    expect(await answer()).toBe("200 backend pod-2");
  } finally {
    checked.resolve();
    await lb.stop();
    await first.stop();
    await second.stop(true);
    names.stop();
  }
}, 15_000);

test("an operator's drain of an address DNS gives stays in force across lookups", async () => {
  const first = startBackend("pod-1");
  const second = startBackendAt("127.0.0.2", first.port, "pod-2");
  const names = await startDnsServer();
  names.records.set("kept.test", ["127.0.0.1"]);
  const lb = await startTestLb([`http://kept.test:${first.port}#resolve`], { "dns-server": names.address, "resolve-interval": "100ms", "health-interval": "1m" });
  try {
    const drained = await fetch(`${lb.lb.adminUrl!.origin}/api/backends/127.0.0.1:${first.port}/drain`, { method: "POST" });
    expect(drained.status).toBe(200);
    names.records.set("kept.test", ["127.0.0.1", "127.0.0.2"]);
    await waitFor(() => lb.lb.pool.find(`http://127.0.0.2:${first.port}`), "a lookup after the drain", 3000);
    expect(lb.lb.pool.find(first.url)!.admin).toBe("draining");
  } finally {
    await lb.stop();
    await Promise.all([first.stop(), second.stop()]);
    names.stop();
  }
});

function startBackendAt(hostname: string, port: number, name: string) {
  const server = Bun.serve({ hostname, port, development: false, fetch: () => new Response(`backend ${name}`) });
  return { stop: () => server.stop(true) };
}
