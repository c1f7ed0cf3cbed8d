import { describe, expect, test } from "bun:test";
import { RoundRobin } from "../../src/balance/round-robin.ts";
import { backendName, createBackend } from "../../src/pool/backend.ts";

const backends = ["http://a:1", "http://b:1", "http://c:1"].map((url) => createBackend({ url, weight: 1 }, 0));
const names = (iterable: Iterable<{ name: string }>) => [...iterable].map((b) => b.name);

describe("round robin", () => {
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
    const first = policy.candidates(backends);
    const second = policy.candidates(backends);
    expect(names(second)[0]).toBe("b:1");
    expect(names(first)[0]).toBe("a:1");
  });

  test("spreads evenly over a shrunken live set", () => {
    const policy = new RoundRobin();
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const first = names(policy.candidates(backends.slice(0, 2)))[0]!;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ "a:1": 500, "b:1": 500 });
  });

  test("no available backends, no candidates", () => {
    expect(names(new RoundRobin().candidates([]))).toEqual([]);
  });
});

describe("backend ids", () => {
  test("always name the port, so an id typed with the default port finds the backend", () => {
    expect(backendName("http://example.com")).toBe("example.com:80");
    expect(backendName("https://example.com")).toBe("example.com:443");
    expect(backendName("http://[::1]:8080")).toBe("[::1]:8080");
    expect(backendName("http://127.0.0.1:9000")).toBe("127.0.0.1:9000");
  });
});
