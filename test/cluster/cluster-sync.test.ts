/** The messages between the primary and its workers, without processes: pool state down, counts and metrics up. */
import { describe, expect, test } from "bun:test";
import { addMetrics, applyMetricsSnapshot, applyPoolState, poolStates, snapshotMetrics, sumLoad } from "../../src/cluster/sync.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { Pool } from "../../src/pool/pool.ts";
import { RoundRobin } from "../../src/balance/round-robin.ts";

const NOW = 1_700_000_000_000;

describe("pool state", () => {
  test("a worker's pool becomes the primary's: members, weights, health and admin states; nothing else", () => {
    const primary = new Pool([{ url: "http://a:1", weight: 1 }, { url: "http://b:1", weight: 3 }]);
    primary.recordCheck(primary.find("http://a:1")!, { ok: true, reason: "status 200" });
    primary.recordCheck(primary.find("http://b:1")!, { ok: false, reason: "status 500" });
    primary.setAdminState(primary.find("http://a:1")!, "draining");
    const worker = new Pool([{ url: "http://gone:1", weight: 1 }]);
    // Through a JSON round trip, as over IPC.
    applyPoolState(worker, JSON.parse(JSON.stringify(poolStates(new Map([["default", primary]]))))["default"]);
    expect(worker.backends.map((b) => [b.url, b.weight, b.health.status, b.admin])).toEqual([
      ["http://a:1", 1, "healthy", "draining"],
      ["http://b:1", 3, "unhealthy", "active"],
    ]);
    expect(worker.available()).toEqual([]);
    primary.setAdminState(primary.find("http://a:1")!, "active");
    applyPoolState(worker, poolStates(new Map([["default", primary]]))["default"]!);
    expect(worker.available().map((b) => b.url)).toEqual(["http://a:1"]);
  });

  test("a weight the primary changed counts in a worker's balancing from its next pick", () => {
    const primary = new Pool([{ url: "http://a:1", weight: 1 }, { url: "http://b:1", weight: 1 }]);
    for (const backend of primary.backends) primary.recordCheck(backend, { ok: true, reason: "status 200" });
    const worker = new Pool([]);
    applyPoolState(worker, poolStates(new Map([["default", primary]]))["default"]!);
    const policy = new RoundRobin();
    const firsts = (picks: number) => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < picks; i++) {
        const url = policy.candidates(worker.available())[0]!.url;
        counts[url] = (counts[url] ?? 0) + 1;
      }
      return counts;
    };
    expect(firsts(100)).toEqual({ "http://a:1": 50, "http://b:1": 50 });
    primary.setWeight(primary.find("http://a:1")!, 3);
    applyPoolState(worker, poolStates(new Map([["default", primary]]))["default"]!);
    expect(firsts(100)).toEqual({ "http://a:1": 75, "http://b:1": 25 });
  });

  test("in-flight and request counts are the sum over the workers' reports", () => {
    const primary = new Pool([{ url: "http://a:1", weight: 1 }, { url: "http://b:1", weight: 1 }]);
    const report = (inflight: number, requests: number) => ({
      queued: 0,
      clients: 0,
      load: [{ url: "http://a:1", inflight, requests, errors: 1, retries: 0 }],
      metrics: snapshotMetrics(new Metrics(), NOW),
    });
    sumLoad(primary.backends, [report(2, 10), report(3, 5)]);
    const [a, b] = primary.backends;
    expect([a!.inflight, a!.stats.requests, a!.stats.errors]).toEqual([5, 15, 2]);
    expect([b!.inflight, b!.stats.requests]).toEqual([0, 0]);
  });
});

describe("metrics", () => {
  test("workers' snapshots add up: counters, histograms and the same second's window", () => {
    const one = new Metrics();
    const two = new Metrics();
    one.of("http://a:1").record("GET", 200, 0.002, NOW);
    one.of("http://a:1").record("GET", 502, 0.3, NOW);
    two.of("http://a:1").record("GET", 200, 0.002, NOW);
    two.of("http://b:1").record("POST", 201, 0.02, NOW - 1000);
    two.count("unrouted", "503");
    one.count("rejected", "queue-full");
    two.count("rejected", "queue-full");
    const mirrors = [one, two].map((m) => {
      const mirror = new Metrics();
      applyMetricsSnapshot(mirror, JSON.parse(JSON.stringify(snapshotMetrics(m, NOW))));
      return mirror;
    });
    const total = new Metrics();
    for (const mirror of mirrors) addMetrics(total, mirror);
    const a = total.of("http://a:1");
    expect(Object.fromEntries(a.requests)).toEqual({ "200 GET": 2, "502 GET": 1 });
    expect(a.histograms.duration.count).toBe(3);
    const [second] = a.lastSeconds(1, NOW);
    expect([second!.requests, second!.errors]).toEqual([3, 1]);
    expect(total.of("http://b:1").lastSeconds(2, NOW).map((s) => s.requests)).toEqual([1, 0]);
    expect(total.pool.unrouted.get("503")).toBe(1);
    expect(total.pool.rejected.get("queue-full")).toBe(2);
  });

  test("a snapshot carries only the last seconds, and the mirror keeps the older ones", () => {
    const worker = new Metrics();
    const mirror = new Metrics();
    worker.of("http://a:1").record("GET", 200, 0.01, NOW - 60_000);
    applyMetricsSnapshot(mirror, snapshotMetrics(worker, NOW - 60_000));
    worker.of("http://a:1").record("GET", 200, 0.01, NOW);
    const snapshot = snapshotMetrics(worker, NOW);
    expect(snapshot.backends[0]!.recent).toHaveLength(1);
    applyMetricsSnapshot(mirror, snapshot);
    const history = mirror.of("http://a:1").lastSeconds(61, NOW);
    expect([history[0]!.requests, history[60]!.requests]).toEqual([1, 1]);
  });
});
