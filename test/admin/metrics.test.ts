/** /metrics after real traffic, read with a real Prometheus exposition-format parser. */
import { afterAll, describe, expect, test } from "bun:test";
import parsePrometheus, { type MetricFamily } from "parse-prometheus-text-format";
import { LATENCY_BUCKETS, bucketOf, quantile } from "../../src/metrics/metrics.ts";
import { spawnLb, startBackend, startTestLb, waitFor } from "../helpers.ts";

const ok = startBackend("ok");
const failing = startBackend("failing", (request) => new Response("no", { status: new URL(request.url).pathname === "/" ? 200 : 503 }));
const lb = await startTestLb([ok.url, failing.url, "http://127.0.0.1:1"], { "outlier-errors": 0 });
afterAll(async () => {
  await lb.stop();
  await ok.stop();
  await failing.stop();
});

const family = (families: MetricFamily[], name: string) => families.find((f) => f.name === name)!;
const sample = (f: MetricFamily, labels: Record<string, string>) =>
  f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));

test("counters, histograms and gauges match the traffic that went through", async () => {
  for (let i = 0; i < 10; i++) await (await fetch(`${lb.url}/x`)).text();
  await (await fetch(`${lb.url}/y`, { method: "POST", body: "z" })).text();
  const text = await (await fetch(`${lb.lb.adminUrl!.origin}/metrics`)).text();
  const families = parsePrometheus(text);

  const requests = family(families, "lb_requests_total");
  expect(requests.type).toBe("COUNTER");
  expect(Number(sample(requests, { backend: ok.url, code: "200", method: "GET" })!.value)).toBe(5);
  expect(Number(sample(requests, { backend: failing.url, code: "503", method: "GET" })!.value)).toBe(5);
  expect(Number(sample(requests, { code: "200", method: "POST" })?.value ?? sample(requests, { code: "503", method: "POST" })!.value)).toBe(1);

  // This parser reads only unlabelled histograms, so give it one backend's series with that label taken off.
  const oneBackend = text
    .split("\n")
    .filter((line) => line.includes("lb_request_duration_seconds") && (line.startsWith("#") || line.includes(`backend="${ok.url}"`)))
    .map((line) => line.replace(`backend="${ok.url}",pool="default",`, "").replace(`{backend="${ok.url}",pool="default"}`, ""))
    .join("\n");
  const duration = family(parsePrometheus(`${oneBackend}\n`), "lb_request_duration_seconds");
  expect(duration.type).toBe("HISTOGRAM");
  const okDuration = duration.metrics[0]!;
  expect(Number(okDuration.count)).toBeGreaterThanOrEqual(5);
  expect(Number(okDuration.buckets!["+Inf"])).toBe(Number(okDuration.count));
  expect(Number(okDuration.buckets!["60"])).toBeLessThanOrEqual(Number(okDuration.count));
  expect(Number(okDuration.sum)).toBeGreaterThan(0);

  // Body bytes both ways, by backend: the POST's one byte went to whichever backend answered it.
  const sent = family(families, "lb_request_body_bytes_total").metrics.reduce((sum, m) => sum + Number(m.value), 0);
  expect(sent).toBe(1);
  // ok answered its 5 GETs, and the POST too when round robin sent it there.
  expect([5, 6].map((n) => n * "backend ok".length)).toContain(Number(sample(family(families, "lb_response_body_bytes_total"), { backend: ok.url })!.value));

  // Time to response headers, per backend, beside the total duration: same buckets, no more samples than requests.
  const headers = text.split("\n").find((line) => line.startsWith(`lb_upstream_header_duration_seconds_count{backend="${ok.url}",pool="default"}`))!;
  expect(Number(headers.split(" ")[1])).toBeGreaterThanOrEqual(5);
  expect(Number(headers.split(" ")[1])).toBeLessThanOrEqual(Number(okDuration.count));

  const up = family(families, "lb_backend_up");
  expect(up.type).toBe("GAUGE");
  expect(Number(sample(up, { backend: ok.url })!.value)).toBe(1);
  expect(Number(sample(up, { backend: "http://127.0.0.1:1" })!.value)).toBe(0);
  expect(Number(sample(family(families, "lb_backend_inflight"), { backend: ok.url })!.value)).toBe(0);
  expect(Number(family(families, "lb_queue_depth").metrics[0]!.value)).toBe(0);

  const checks = family(families, "lb_health_checks_total");
  expect(Number(sample(checks, { backend: "http://127.0.0.1:1", result: "fail" })!.value)).toBeGreaterThanOrEqual(1);
  expect(Number(sample(checks, { backend: ok.url, result: "pass" })!.value)).toBeGreaterThanOrEqual(1);

  for (const name of ["lb_upstream_connect_errors_total", "lb_retries_total", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"]) {
    expect(family(families, name)).toBeDefined();
  }
  expect(Number(family(families, "process_resident_memory_bytes").metrics[0]!.value)).toBeGreaterThan(1e6);
  expect(Number(family(families, "process_max_fds").metrics[0]!.value)).toBeGreaterThanOrEqual(Number(family(families, "process_open_fds").metrics[0]!.value));

  // The state as a labelled gauge (HAProxy's exporter): exactly one state is 1 for each backend.
  const state = family(families, "lb_backend_state");
  expect(Number(sample(state, { backend: ok.url, state: "healthy" })!.value)).toBe(1);
  expect(Number(sample(state, { backend: "http://127.0.0.1:1", state: "unhealthy" })!.value)).toBe(1);
  for (const url of [ok.url, failing.url, "http://127.0.0.1:1"]) {
    expect(state.metrics.filter((m) => m.labels?.backend === url).reduce((sum, m) => sum + Number(m.value), 0)).toBe(1);
  }
});

test("a refused connection and the retry it causes are counted", async () => {
  const flaky = startBackend("flaky");
  const lb2 = await startTestLb([flaky.url, ok.url], { "health-interval": "1m" });
  try {
    await flaky.stop();
    await (await fetch(`${lb2.url}/r`)).text();
    const families = parsePrometheus(await (await fetch(`${lb2.lb.adminUrl!.origin}/metrics`)).text());
    expect(Number(sample(family(families, "lb_upstream_connect_errors_total"), { backend: flaky.url })!.value)).toBe(1);
    expect(Number(sample(family(families, "lb_retries_total"), { backend: ok.url })!.value)).toBe(1);
  } finally {
    await lb2.stop();
  }
});

test("/api/stats gives per-backend rates, latency percentiles and history", async () => {
  const stats = (await (await fetch(`${lb.lb.adminUrl!.origin}/api/stats`)).json()) as {
    pool: { backends: number; healthy: number; rps: number };
    backends: Array<{ id: string; state: string; rps: number; errorRate: number; p50Ms: number | null; series: { rps: number[] } }>;
    events: Array<{ backend: string; message: string }>;
  };
  expect(stats.pool).toMatchObject({ backends: 3, healthy: 2 });
  const [okRow, failingRow, deadRow] = stats.backends;
  expect(okRow!.rps).toBeGreaterThan(0);
  expect(okRow!.p50Ms).not.toBeNull();
  expect(failingRow!.errorRate).toBe(1);
  expect(deadRow!.state).toBe("unhealthy");
  expect(okRow!.series.rps).toHaveLength(120);
  expect(okRow!.series.rps.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5);
  await waitFor(() => stats.events.some((e) => e.backend === "127.0.0.1:1" && e.message.startsWith("down")), "the down event");
});

describe.each([1, 2])("a removed backend leaves /metrics (--workers %d)", (workers) => {
  test("once its last request is over, even one that outlived its drain timeout (its answer is not counted back in)", async () => {
    const release = Promise.withResolvers<void>();
    const held = startBackend("held", async (request) => {
      if (new URL(request.url).pathname === "/hold") await release.promise;
      return new Response("held");
    });
    const lb = await spawnLb(["--port", "0", "--host", "127.0.0.1", "--workers", String(workers), "--health-interval", "1m", "--no-access-log", held.url]);
    const admin = /admin (http:\/\/\S+)/.exec(lb.stderr.find((l) => l.includes("listening"))!)![1]!;
    const listed = async () => (await (await fetch(`${admin}/metrics`)).text()).includes(`backend="${held.url}"`);
    const inflight = async () => ((await (await fetch(`${admin}/api/backends`)).json()) as { backends: Array<{ inflight: number }> }).backends[0]?.inflight;
    try {
      expect(await (await fetch(`${lb.url}/a`)).text()).toBe("held");
      await waitFor(listed, "the backend's counts in /metrics"); // with workers, once one has reported
      const answer = fetch(`${lb.url}/hold`).then((r) => r.text());
      await waitFor(async () => (await inflight()) === 1, "the held request in flight"); // the primary's view too
      const removal = await fetch(`${admin}/api/backends/${new URL(held.url).host}?timeout=100ms`, { method: "DELETE" });
      expect(await removal.json()).toEqual({ removed: new URL(held.url).host, inflightAtRemoval: 1 });
      release.resolve();
      expect(await answer).toBe("held");
      // Its answer was counted as it went out, after the removal: that must not bring the backend back.
      await waitFor(async () => !(await listed()), "the removed backend to leave /metrics", 3000);
    } finally {
      release.resolve();
      await lb.kill();
      await held.stop();
    }
  }, 15_000);
});

test("latency buckets and quantiles", () => {
  expect(bucketOf(0.0005)).toBe(0);
  expect(bucketOf(0.001)).toBe(0);
  expect(bucketOf(0.003)).toBe(2);
  expect(bucketOf(100)).toBe(LATENCY_BUCKETS.length);
  const counts = new Array(LATENCY_BUCKETS.length + 1).fill(0);
  counts[1] = 98;
  counts[6] = 2;
  // Interpolated within the bucket, as PromQL's histogram_quantile: 50 of 98 samples into (1 ms, 2.5 ms].
  expect(quantile(counts, 0.5)).toBeCloseTo(0.001 + 0.0015 * (50 / 98), 9);
  expect(quantile(counts, 0.99)).toBeCloseTo(0.075, 9); // half way through the 2 samples in (50 ms, 100 ms]
  expect(quantile(new Array(LATENCY_BUCKETS.length + 1).fill(0), 0.5)).toBeNull();
  const slow = new Array(LATENCY_BUCKETS.length + 1).fill(0);
  slow[LATENCY_BUCKETS.length] = 3; // past the last bound: the last finite bound, as PromQL answers
  expect(quantile(slow, 0.5)).toBe(LATENCY_BUCKETS.at(-1)!);
});
