import { describe, expect, test } from "bun:test";
import { formatDuration, parseDuration } from "../../src/config/duration.ts";

describe("parseDuration", () => {
  test.each([
    ["250ms", 250],
    ["10s", 10_000],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1m30s", 90_000],
    ["1h30m", 5_400_000],
    ["2m 500ms", 120_500],
    ["1.5s", 1500],
    ["2", 2000],
    [" 3s ", 3000],
    [0.5, 500],
    [2, 2000],
  ] as const)("%p is %p ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  test.each(["", "s", "10x", "-1s", "1 m s", "ten", "1e3", "10S", "1m30", "m30s"])("%p is not a duration", (input) => {
    expect(parseDuration(input)).toBeNull();
  });

  test("negative and non-finite numbers are refused", () => {
    expect(parseDuration(-1)).toBeNull();
    expect(parseDuration(Number.POSITIVE_INFINITY)).toBeNull();
  });
});

describe("formatDuration", () => {
  test.each([
    [250, "250ms"],
    [1500, "1.5s"],
    [10_000, "10s"],
    [60_000, "1m"],
    [90_000, "90s"],
    [1234, "1234ms"],
    [3_600_000, "1h"],
    [86_400_000, "1d"],
  ])("%p ms reads %p", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
