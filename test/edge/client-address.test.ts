/**
 * The real client address: the one function that decides it (unit; src/net/ip.ts has its own tests), then through real sockets: curl connects from
 * 127.0.0.1 (untrusted) or from 127.0.0.2 (--interface; trusted), and what the backend, the access log, the ip hash
 * and the deny list see is checked.
 */
import { describe, expect, test } from "bun:test";
import { clientAddress } from "../../src/edge/client-address.ts";
import { type Cidr, parseCidr } from "../../src/net/ip.ts";
import { stoppedAfterEach } from "../helpers.ts";

const trusted = ["10.0.0.0/8", "2001:db8::/32"].map((text) => parseCidr(text) as Cidr);
const from = (peer: string, headers: Record<string, string>) => clientAddress(peer, new Headers(headers), trusted);

describe("clientAddress", () => {
  test("without --trusted-proxies the peer is the client, and X-Forwarded-For is appended to as before", () => {
    expect(clientAddress("10.0.0.1", new Headers({ "x-forwarded-for": "6.6.6.6" }), null)).toEqual({ ip: "10.0.0.1" });
  });

  test("from an untrusted peer, X-Forwarded-For and Forwarded change nothing; both are dropped", () => {
    expect(from("192.0.2.1", { "x-forwarded-for": "6.6.6.6", forwarded: "for=7.7.7.7" })).toEqual({ ip: "192.0.2.1", forwardedFor: "192.0.2.1", untrusted: true });
  });

  test("from a trusted peer, the right-most address that is not trusted; the verified part of the chain goes on", () => {
    expect(from("10.0.0.1", { "x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.9.9.9" })).toEqual({ ip: "203.0.113.9", forwardedFor: "203.0.113.9, 10.9.9.9, 10.0.0.1" });
    expect(from("10.0.0.1", { "x-forwarded-for": "203.0.113.9" })).toEqual({ ip: "203.0.113.9", forwardedFor: "203.0.113.9, 10.0.0.1" });
  });

  test("every hop trusted: the left-most; a garbled hop: the trusted one after it; none: the peer", () => {
    expect(from("10.0.0.1", { "x-forwarded-for": "10.0.0.3, 10.0.0.2" }).ip).toBe("10.0.0.3");
    expect(from("10.0.0.1", { "x-forwarded-for": "203.0.113.9, bogus, 10.0.0.2" })).toEqual({ ip: "10.0.0.2", forwardedFor: "10.0.0.2, 10.0.0.1" });
    expect(from("10.0.0.1", {})).toEqual({ ip: "10.0.0.1", forwardedFor: "10.0.0.1" });
  });

  test("Forwarded's for= (quoted, bracketed IPv6 with a port, IPv4 with a port) when there is no X-Forwarded-For", () => {
    expect(from("10.0.0.1", { forwarded: 'for="[2001:db9::7]:4711";proto=https, for=10.0.0.2:80' }).ip).toBe("2001:db9::7");
    expect(from("10.0.0.1", { forwarded: "for=198.51.100.17;by=10.0.0.1" }).ip).toBe("198.51.100.17");
    expect(from("2001:db8::5", { forwarded: "for=_hidden" })).toEqual({ ip: "2001:db8::5", forwardedFor: "2001:db8::5" });
  });
});

describe("hostile forwarded headers from a trusted peer", () => {
  test.each([
    ["", "10.0.0.1"],
    [",,,", "10.0.0.1"],
    ["[::1", "10.0.0.1"],
    ["1.2.3.4:99999:1", "10.0.0.1"],
    ["999.1.1.1", "10.0.0.1"],
    ["unknown, 10.0.0.2", "10.0.0.2"],
    [`${"1.".repeat(5000)}1`, "10.0.0.1"],
    ["[2001:db9::1]:80", "2001:db9::1"],
    ["203.0.113.9:8080", "203.0.113.9"],
    ["\u00ff, 203.0.113.9", "203.0.113.9"],
  ])("X-Forwarded-For %p gives %p, never a throw", (header, client) => {
    expect(clientAddress("10.0.0.1", new Headers([["x-forwarded-for", header]]), trusted).ip).toBe(client);
  });

  test.each(['for="', "for=;for=", 'for="[::1"', "by=1.2.3.4", "for=1.2.3.4;for=5.6.7.8"])("Forwarded %p never throws", (header) => {
    expect(() => clientAddress("10.0.0.1", new Headers([["forwarded", header]]), trusted)).not.toThrow();
  });
});

const { backend, lbFor } = stoppedAfterEach();

/** curl from `source` (a loopback address) with extra headers: status, and what the backend saw. */
async function curlFrom(source: string, url: string, headers: string[] = []) {
  const proc = Bun.spawn(["curl", "-s", "--interface", source, "-o", "/dev/null", "-w", "%{http_code}", ...headers.flatMap((h) => ["-H", h]), url]);
  return Number(await new Response(proc.stdout).text());
}

/** A backend that keeps the X-Forwarded-For of each request (not of health checks, on /). */
function forwardedForBackend() {
  const seen: string[] = [];
  const b = backend("b", (request) => {
    if (new URL(request.url).pathname !== "/") seen.push(request.headers.get("x-forwarded-for") ?? "");
    return new Response("ok");
  });
  return { seen, b };
}

describe("through real sockets", () => {
  test("a spoofed X-Forwarded-For from an untrusted peer changes nothing: not the log, the deny list, nor the header", async () => {
    const { seen, b } = forwardedForBackend();
    const lb = await lbFor([b.url], { "trusted-proxies": "127.0.0.2/32", deny: "6.6.6.0/24" });
    expect(await curlFrom("127.0.0.1", `${lb.url}/spoof`, ["X-Forwarded-For: 6.6.6.6", "Forwarded: for=6.6.6.7"])).toBe(200);
    expect(seen).toEqual(["127.0.0.1"]);
    expect(lb.access.at(-1)?.client).toBe("127.0.0.1");
  });

  test("a spoofed Forwarded from an untrusted peer is dropped; a trusted proxy's goes on as it sent it", async () => {
    const seen: string[] = [];
    const b = backend("b", (request) => {
      if (new URL(request.url).pathname !== "/") seen.push(request.headers.get("forwarded") ?? "none");
      return new Response("ok");
    });
    const lb = await lbFor([b.url], { "trusted-proxies": "127.0.0.2/32" });
    expect(await curlFrom("127.0.0.1", `${lb.url}/spoof`, ["Forwarded: for=6.6.6.7;proto=https"])).toBe(200);
    expect(await curlFrom("127.0.0.2", `${lb.url}/trusted`, ["Forwarded: for=192.0.2.9;proto=https"])).toBe(200);
    expect(seen).toEqual(["none", "for=192.0.2.9;proto=https"]);
    expect(lb.access.at(-1)?.client).toBe("192.0.2.9");
  });

  test("the ip hash key uses it: from the trusted proxy each client keeps its backend; spoofed addresses all hash as the peer", async () => {
    const [b1, b2] = [backend("b1"), backend("b2")];
    const lb = await lbFor([b1.url, b2.url], { "trusted-proxies": "127.0.0.2/32", policy: "hash", "hash-key": "ip" });
    const servedBy = async (source: string, client: string) => {
      const proc = Bun.spawn(["curl", "-s", "--interface", source, "-H", `X-Forwarded-For: ${client}`, `${lb.url}/who`]);
      return new Response(proc.stdout).text();
    };
    const clients = Array.from({ length: 24 }, (_, i) => `203.0.113.${i + 1}`);
    const trusted = await Promise.all(clients.map((client) => servedBy("127.0.0.2", client)));
    expect(new Set(trusted).size).toBe(2); // 24 clients over both backends (all on one: a chance of 1 in 8 million)
    expect(await Promise.all(clients.map((client) => servedBy("127.0.0.2", client)))).toEqual(trusted); // each keeps its own
    const spoofed = await Promise.all(clients.map((client) => servedBy("127.0.0.1", client)));
    expect(new Set(spoofed).size).toBe(1);
  });

  test("from a trusted proxy, its X-Forwarded-For names the client: log, deny list (403, counted) and forwarded header use it", async () => {
    const { seen, b } = forwardedForBackend();
    const lb = await lbFor([b.url], { "trusted-proxies": "127.0.0.2/32", deny: "6.6.6.0/24" });
    expect(await curlFrom("127.0.0.2", `${lb.url}/real`, ["X-Forwarded-For: 1.1.1.1, 203.0.113.9"])).toBe(200);
    expect(seen).toEqual(["203.0.113.9, 127.0.0.2"]);
    expect(lb.access.at(-1)?.client).toBe("203.0.113.9");
    expect(await curlFrom("127.0.0.2", `${lb.url}/denied`, ["X-Forwarded-For: 6.6.6.6"])).toBe(403);
    expect(seen).toHaveLength(1); // never forwarded
    expect(lb.access.at(-1)).toMatchObject({ client: "6.6.6.6", status: 403, path: "/denied" });
    expect(lb.lb.metrics.pool.rejected.get("deny")).toBe(1);
  });
});
