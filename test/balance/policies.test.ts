/** Each policy's distribution, measured over many picks with real Backend objects (no sockets needed: pure code). */
import { describe, expect, test } from "bun:test";
import { PeakEwma } from "../../src/balance/ewma.ts";
import { RendezvousHash, rankByKey, rankEvenly } from "../../src/balance/hash.ts";
import { LeastConnections } from "../../src/balance/least-connections.ts";
import type { Policy, RequestContext } from "../../src/balance/policy.ts";
import { PowerOfTwo, RandomChoice } from "../../src/balance/random.ts";
import { cookieValue, keyOf } from "../../src/balance/request-keys.ts";
import { parseHashKey } from "../../src/config/hash-key.ts";
import { RoundRobin } from "../../src/balance/round-robin.ts";
import { StickySessions } from "../../src/balance/sticky.ts";
import { type Backend, createBackend, currentWeight } from "../../src/pool/backend.ts";
import { Pool } from "../../src/pool/pool.ts";

const make = (...weights: number[]) => weights.map((weight, i) => createBackend({ url: `http://${"abcdefgh"[i]}:1`, weight }, 0));
const host = (b: Backend) => b.name[0]!;
const request = (over: Partial<RequestContext> = {}): RequestContext => ({ clientIp: "10.0.0.1", path: "/", headers: new Headers(), ...over });
const first = (policy: Policy, backends: Backend[], ctx = request()) => [...policy.candidates(backends, ctx)][0]!;
function tally(picks: number, pick: () => Backend): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < picks; i++) {
    const name = host(pick());
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
/** A seeded generator, so random policies give the same numbers on every run. */
function seeded(seed = 42): () => number {
  let state = seed;
  return () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("round robin (smooth weighted)", () => {
  test("weights 5,1,1 give a a b a c a a, never five a's in a row", () => {
    const backends = make(5, 1, 1);
    const policy = new RoundRobin();
    const sequence = Array.from({ length: 14 }, () => host(first(policy, backends))).join(" ");
    expect(sequence).toBe("a a b a c a a a a b a c a a");
  });

  test("shares follow weights exactly over a full cycle", () => {
    const backends = make(3, 2, 1);
    const policy = new RoundRobin();
    expect(tally(600, () => first(policy, backends))).toEqual({ a: 300, b: 200, c: 100 });
  });

  test("a backend that leaves the set keeps its score meanwhile and takes its turn when it is back", () => {
    const [a, b, c] = make(5, 1, 1) as [Backend, Backend, Backend];
    const policy = new RoundRobin();
    const picks = (set: Backend[], n: number) => Array.from({ length: n }, () => host(first(policy, set))).join(" ");
    expect(picks([a, b, c], 3)).toBe("a a b"); // scores a 1, b -4, c 3
    expect(picks([a, b], 3)).toBe("a a a"); // a 6-6, 5-6, 4-6; b -3, -2, -1; c out, still at 3
    expect(picks([a, b, c], 2)).toBe("c a"); // c 3+1 = 4 beats a -2+5 and b -1+1
  });
});

describe("round robin: order, retries and the live set", () => {
  const backends = make(1, 1, 1);
  const names = (iterable: Iterable<{ name: string }>) => [...iterable].map((b) => b.name);

  test("first choices rotate through the backends in configured order", () => {
    const policy = new RoundRobin();
    const firsts = Array.from({ length: 7 }, () => names(policy.candidates(backends))[0]);
    expect(firsts).toEqual(["a:1", "b:1", "c:1", "a:1", "b:1", "c:1", "a:1"]);
  });

  test("each pick lists every backend once, continuing in order, so retries never repeat one", () => {
    const policy = new RoundRobin();
    policy.candidates(backends);
    expect(names(policy.candidates(backends))).toEqual(["b:1", "c:1", "a:1"]);
  });

  test("the turn is taken when candidates are asked for, not when they are read", () => {
    const policy = new RoundRobin();
    const earlier = policy.candidates(backends);
    const later = policy.candidates(backends);
    expect(names(later)[0]).toBe("b:1");
    expect(names(earlier)[0]).toBe("a:1");
  });

  test("spreads evenly over a shrunken live set", () => {
    const policy = new RoundRobin();
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const chosen = names(policy.candidates(backends.slice(0, 2)))[0]!;
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ "a:1": 500, "b:1": 500 });
  });

  test("no available backends, no candidates", () => {
    expect(names(new RoundRobin().candidates([]))).toEqual([]);
  });
});

describe("least connections", () => {
  test("picks the backend with the fewest requests in flight per weight", () => {
    const [a, b, c] = make(1, 1, 2);
    a!.inflight = 3;
    b!.inflight = 1;
    c!.inflight = 3; // 1.5 per unit of weight
    expect(host(first(new LeastConnections(), [a!, b!, c!]))).toBe("b");
    b!.inflight = 2;
    expect(host(first(new LeastConnections(), [a!, b!, c!]))).toBe("c");
  });

  test("ties are broken round robin, not always the first", () => {
    const backends = make(1, 1, 1);
    const policy = new LeastConnections();
    expect(tally(300, () => first(policy, backends))).toEqual({ a: 100, b: 100, c: 100 });
  });
});

describe("random and p2c", () => {
  test("random follows weights within 3%", () => {
    const backends = make(1, 2, 7);
    const policy = new RandomChoice(undefined, seeded());
    const counts = tally(20_000, () => first(policy, backends));
    expect(counts.a! / 20_000).toBeCloseTo(0.1, 1);
    expect(Math.abs(counts.b! / 20_000 - 0.2)).toBeLessThan(0.03);
    expect(Math.abs(counts.c! / 20_000 - 0.7)).toBeLessThan(0.03);
  });

  test("p2c never picks the most loaded of three, and spreads over the other two", () => {
    const [a, b, c] = make(1, 1, 1);
    c!.inflight = 10;
    const policy = new PowerOfTwo(undefined, seeded());
    const counts = tally(3000, () => first(policy, [a!, b!, c!]));
    // The two draws are distinct, so c always meets a less loaded rival.
    expect(counts.c).toBeUndefined();
    expect(Math.abs(counts.a! - counts.b!)).toBeLessThan(300);
  });
});

describe("peak EWMA", () => {
  test("a backend 10× slower gets far fewer picks", () => {
    const backends = make(1, 1, 1);
    let now = 0;
    const policy = new PeakEwma(undefined, seeded(), () => now);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 3000; i++) {
      now += 1;
      const chosen = first(policy, backends);
      counts[host(chosen)] = (counts[host(chosen)] ?? 0) + 1;
      policy.observe(chosen, host(chosen) === "c" ? 100 : 10);
    }
    expect(counts.c!).toBeLessThan(counts.a! / 5);
    expect(counts.c!).toBeLessThan(counts.b! / 5);
  });

  test("a backend with requests in flight but no answer yet scores worse than any measured one", () => {
    const [hung, fine] = make(1, 1);
    const policy = new PeakEwma(undefined, seeded(), () => 0);
    policy.observe(fine!, 2000);
    fine!.inflight = 5;
    hung!.inflight = 1;
    expect(policy.score(hung!, 0)).toBeGreaterThan(policy.score(fine!, 0));
    expect(Array.from({ length: 50 }, () => host(first(policy, [hung!, fine!]))).every((h) => h === "b")).toBe(true);
  });

  test("a peak counts at once; with no new samples the cost decays so a recovered backend is tried again", () => {
    const [a] = make(1);
    let now = 0;
    const policy = new PeakEwma(undefined, seeded(), () => now);
    policy.observe(a!, 10);
    policy.observe(a!, 500);
    expect(policy.cost(a!, now)).toBe(500);
    now += 30_000;
    expect(policy.cost(a!, now)).toBeLessThan(500 * 0.06);
  });
});

describe("rendezvous hash", () => {
  test("10,000 keys over 5 backends: removing one moves only its keys", () => {
    const backends = make(1, 1, 1, 1, 1);
    const policy = new RendezvousHash({ kind: "header", name: "x-user" });
    const pick = (list: Backend[], key: string) => host(first(policy, list, request({ headers: new Headers({ "x-user": key }) })));
    const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
    const before = keys.map((k) => pick(backends, k));
    const perBackend = Object.values(Object.groupBy(before, (x) => x)).map((v) => v!.length);
    for (const n of perBackend) expect(Math.abs(n - 2000)).toBeLessThan(250);

    const without = backends.filter((b) => host(b) !== "c");
    const after = keys.map((k) => pick(without, k));
    const moved = keys.filter((_, i) => before[i] !== after[i]);
    expect(moved.length / keys.length).toBeLessThanOrEqual(0.2 + 0.02);
    // Exactly the keys c held moved; nobody else's.
    expect(moved).toEqual(keys.filter((_, i) => before[i] === "c"));
  });

  test("the same key always gets the same order; weight 3 wins about three times the keys", () => {
    const backends = make(3, 1);
    const seed = (b: Backend) => Bun.hash.xxHash32(b.url);
    expect(rankByKey(backends, "k", () => 1, seed)).toEqual(rankByKey(backends, "k", () => 1, seed));
    const wins = Array.from({ length: 8000 }, (_, i) => host(rankByKey(backends, `k${i}`, (b) => b.weight, seed)[0]!));
    const share = wins.filter((w) => w === "a").length / 8000;
    expect(Math.abs(share - 0.75)).toBeLessThan(0.03);
  });

  test("with equal weights the quick ranking is rankByKey's own, so no key moves: ties, any size, any script", () => {
    const seedOf = (b: Backend) => Bun.hash.xxHash32(b.url);
    const encoder = new TextEncoder();
    for (const n of [1, 2, 5, 37, 300]) {
      const url = (i: number) => `http://10.0.${i >> 8}.${i & 255}:80`;
      const backends = Array.from({ length: n }, (_, i) => createBackend({ url: url(i), weight: 1 }, 0));
      const seeds = backends.map(seedOf);
      for (const key of [...Array.from({ length: 200 }, (_, i) => `user-${i}`), "é日本", "😀", ""]) {
        expect(rankEvenly(backends, encoder.encode(key), seeds)).toEqual(rankByKey(backends, key, () => 1, seedOf));
      }
    }
    // Two backends with the same seed tie on every key: the earlier one comes first, as in rankByKey's stable sort.
    const twins = make(1, 1);
    const same = () => 7;
    expect(rankEvenly(twins, encoder.encode("k"), [7, 7])).toEqual(rankByKey(twins, "k", () => 1, same));
    expect(rankEvenly(twins, encoder.encode("k"), [7, 7]).map(host)).toEqual(["a", "b"]);
  });

  test("the policy ranks a keyed request as rankByKey does, with equal weights and with unequal ones", () => {
    const seedOf = (b: Backend) => Bun.hash.xxHash32(b.url);
    for (const weights of [[1, 1, 1, 1], [1, 2, 1, 3]]) {
      const backends = make(...weights);
      const policy = new RendezvousHash({ kind: "header", name: "x-user" });
      for (let i = 0; i < 100; i++) {
        const ranked = policy.candidates(backends, request({ headers: new Headers({ "x-user": `u${i}` }) }));
        expect(ranked).toEqual(rankByKey(backends, `u${i}`, (b) => b.weight, seedOf));
      }
    }
  });

  test("a request without the key is balanced round robin", () => {
    const backends = make(1, 1);
    const policy = new RendezvousHash({ kind: "cookie", name: "sid" });
    expect([first(policy, backends), first(policy, backends)].map(host)).toEqual(["a", "b"]);
  });

  test("hash keys", () => {
    expect(parseHashKey("ip")).toEqual({ kind: "ip" });
    expect(parseHashKey("header:X-User")).toEqual({ kind: "header", name: "X-User" });
    expect(parseHashKey("cookie:sid")).toEqual({ kind: "cookie", name: "sid" });
    expect(parseHashKey("query:x")).toBeNull();
    expect(keyOf({ kind: "path" }, request({ path: "/a/b?x=1" }))).toBe("/a/b");
    expect(keyOf({ kind: "ip" }, request())).toBe("10.0.0.1");
    expect(cookieValue(new Headers({ cookie: "a=1; sid=xyz ; b=2" }), "sid")).toBe("xyz");
    expect(cookieValue(new Headers({ cookie: "a=1" }), "sid")).toBeUndefined();
  });
});

describe("sticky sessions", () => {
  test("the cookie names a backend by an opaque id and puts it first while available", () => {
    const backends = make(1, 1, 1);
    const sticky = new StickySessions("lb");
    const cookie = sticky.cookieFor(backends[2]!);
    expect(cookie).toMatch(/^lb=[0-9a-z]+; Path=\/; HttpOnly; SameSite=Lax$/);
    expect(cookie).not.toContain("c:1");
    const headers = new Headers({ cookie: cookie.split(";")[0]! });
    const pinned = sticky.pinned(backends, headers);
    expect(pinned).toBe(backends[2]);
    expect([...sticky.prefer(pinned, backends)].map(host)).toEqual(["c", "a", "b"]);
    expect(sticky.pinned(backends.slice(0, 2), headers)).toBeUndefined();
  });
});

describe("slow start", () => {
  test("a recovered backend ramps from 10% to its full weight", () => {
    const [a] = make(10);
    a!.health = { ...a!.health, status: "healthy", since: 1000, recovered: true };
    expect(currentWeight(a!, 10_000, 1000)).toBe(1);
    expect(currentWeight(a!, 10_000, 6000)).toBe(5);
    expect(currentWeight(a!, 10_000, 11_000)).toBe(10);
    expect(currentWeight(a!, 0, 1000)).toBe(10);
    a!.health = { ...a!.health, recovered: false };
    expect(currentWeight(a!, 10_000, 1000)).toBe(10);
  });

  test("round robin gives a warming backend its ramped share", () => {
    const [a, b] = make(1, 1);
    b!.health = { ...b!.health, status: "healthy", since: 0, recovered: true };
    let now = 0;
    const policy = new RoundRobin((backend) => currentWeight(backend, 10_000, now));
    expect(tally(1100, () => first(policy, [a!, b!]))).toEqual({ a: 1000, b: 100 });
    now = 5000;
    expect(tally(1500, () => first(policy, [a!, b!]))).toEqual({ a: 1000, b: 500 });
    now = 10_000;
    expect(tally(1000, () => first(policy, [a!, b!]))).toEqual({ a: 500, b: 500 });
  });
});

describe("equal weights are weighed once per list", () => {
  const counting = () => {
    const weighed = { count: 0 };
    const weightOf = (backend: Backend) => {
      weighed.count++;
      return backend.weight;
    };
    return { weighed, weightOf };
  };
  const policies = (weightOf: (backend: Backend) => number): Array<[string, Policy]> => [
    ["round robin", new RoundRobin(weightOf)],
    ["least connections", new LeastConnections(weightOf)],
    ["random", new RandomChoice(weightOf, seeded())],
    ["p2c", new PowerOfTwo(weightOf, seeded())],
    ["ewma", new PeakEwma(weightOf, seeded(), () => 0)],
  ];

  test("no policy weighs a backend again while the list and its weights stay the same, and shares stay even", () => {
    const backends = make(1, 1, 1, 1);
    const { weighed, weightOf } = counting();
    for (const [name, policy] of policies(weightOf)) {
      policy.candidates(backends, request());
      weighed.count = 0;
      const counts = tally(4000, () => first(policy, backends));
      expect({ name, weighed: weighed.count }).toEqual({ name, weighed: 0 });
      for (const share of Object.values(counts)) expect(share).toBeGreaterThan(800);
      expect(Object.keys(counts).sort()).toEqual(["a", "b", "c", "d"]);
    }
  });

  test("a list with a backend in slow start is weighed again at every pick, so its share follows the ramp", () => {
    const [a, b] = make(1, 1);
    b!.health = { ...b!.health, status: "healthy", since: 0, recovered: true };
    const backends = [a!, b!];
    let now = 0;
    const policy = new RoundRobin((backend) => currentWeight(backend, 10_000, now));
    expect(tally(1100, () => first(policy, backends))).toEqual({ a: 1000, b: 100 });
    now = 10_000;
    expect(tally(1000, () => first(policy, backends))).toEqual({ a: 500, b: 500 });
  });

  test("a weight changed through the pool counts from the next pick", () => {
    const pool = new Pool(["http://a:1", "http://b:1"].map((url) => ({ url, weight: 1 })));
    for (const backend of pool.backends) pool.recordCheck(backend, { ok: true, reason: "status 200" });
    const policy = new RoundRobin();
    expect(tally(100, () => first(policy, pool.available() as Backend[]))).toEqual({ a: 50, b: 50 });
    pool.setWeight(pool.backends[0]!, 3);
    expect(tally(100, () => first(policy, pool.available() as Backend[]))).toEqual({ a: 75, b: 25 });
    pool.close();
  });
});
