import { describe, expect, test } from "bun:test";
import { isIdempotent } from "../../src/http/h1/request-head.ts";
import { mayRetry, retryBudgetAllows } from "../../src/proxy/retry.ts";
import { classifyFailure } from "../../src/upstream/failure.ts";

describe("retry rules", () => {
  test("idempotent methods per RFC 9110 §9.2.2", () => {
    expect(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"].every(isIdempotent)).toBe(true);
    expect(["POST", "PATCH", "CONNECT"].some(isIdempotent)).toBe(false);
  });

  test("connect failures are retried for any method when the body can be sent again", () => {
    expect(mayRetry("connect", "POST", true)).toBe(true);
    expect(mayRetry("connect", "GET", true)).toBe(true);
    expect(mayRetry("connect", "POST", false)).toBe(false);
  });

  test("resets are retried only for idempotent methods", () => {
    expect(mayRetry("reset", "GET", true)).toBe(true);
    expect(mayRetry("reset", "PUT", true)).toBe(true);
    expect(mayRetry("reset", "POST", true)).toBe(false);
    expect(mayRetry("reset", "PATCH", true)).toBe(false);
  });

  test("timeouts and malformed answers are not retried", () => {
    expect(mayRetry("timeout", "GET", true)).toBe(false);
    expect(mayRetry("protocol", "GET", true)).toBe(false);
  });
});

describe("retry budget", () => {
  test("at least 3 retries in flight, otherwise at most the budget's share of requests in flight", () => {
    expect(retryBudgetAllows(1, 0, 20)).toBe(true);
    expect(retryBudgetAllows(1, 2, 20)).toBe(true);
    expect(retryBudgetAllows(1, 3, 20)).toBe(false);
    expect(retryBudgetAllows(100, 19, 20)).toBe(true);
    expect(retryBudgetAllows(100, 20, 20)).toBe(false);
    expect(retryBudgetAllows(100, 3, 0)).toBe(false);
  });
});

describe("classifying fetch errors", () => {
  const error = (code: string) => Object.assign(new TypeError("x"), { code });
  test.each([
    ["ECONNREFUSED", "connect", "connection refused"],
    ["ENOTFOUND", "connect", "DNS lookup failed"],
    ["ECONNRESET", "reset", "connection reset"],
    ["Malformed_HTTP_Response", "protocol", "malformed response"],
  ])("%s is a %s failure", (code, kind, reason) => {
    expect(classifyFailure(error(code))).toEqual({ kind: kind as never, reason });
  });

  test("a timeout is a timeout", () => {
    expect(classifyFailure(new DOMException("t", "TimeoutError")).kind).toBe("timeout");
  });

  test("real errors from fetch classify the same way", async () => {
    const refused = await fetch("http://127.0.0.1:1/").catch((e) => e);
    expect(classifyFailure(refused).kind).toBe("connect");
  });
});
