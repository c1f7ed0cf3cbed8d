/** When an exchange's promise settles: at once when it is alone, at the next turn with the others when it is not. */
import { expect, test } from "bun:test";
import type { UpstreamResponse } from "../../src/upstream/client.ts";
import { Exchange } from "../../src/upstream/exchange.ts";
import { failure } from "../../src/upstream/failure.ts";

const request = { method: "GET", target: "/", headers: [], body: null, client: "c1", timeoutMs: 30_000 };
const answer = (status: number): UpstreamResponse => ({ status, statusText: "", headers: [], body: null });

/** An exchange whose owner says whether others are still waiting once it settles. */
function exchange(othersWaiting: () => boolean): { exchange: Exchange; settled: () => boolean } {
  let done = false;
  const made = new Exchange("http://127.0.0.1:1", request, othersWaiting);
  void made.result.then(() => (done = true));
  return { exchange: made, settled: () => done };
}

test("a lone exchange settles at once: its caller runs in this turn's microtasks", async () => {
  const lone = exchange(() => false);
  lone.exchange.resolve(answer(200));
  await Promise.resolve();
  await Promise.resolve();
  expect(lone.settled()).toBe(true);
});

test("with others waiting, answers read in one turn settle together at the next, each with its own", async () => {
  let waiting = 3;
  const three = [exchange(() => --waiting > 0), exchange(() => --waiting > 0), exchange(() => --waiting > 0)];
  three.forEach((one, i) => one.exchange.resolve(answer(200 + i)));
  await Promise.resolve();
  await Promise.resolve();
  // The first two found others still waiting and wait for the turn; the last, alone by then, went at once.
  expect(three.map((one) => one.settled())).toEqual([false, false, true]);
  await new Promise((next) => setImmediate(next));
  expect(three.map((one) => one.settled())).toEqual([true, true, true]);
  const results = await Promise.all(three.map((one) => one.exchange.result));
  expect(results.map((result) => (result as UpstreamResponse).status)).toEqual([200, 201, 202]);
});

test("an exchange settles once: a second result, even while the first waits for the turn, is dropped", async () => {
  const held = exchange(() => true);
  held.exchange.resolve(answer(200));
  held.exchange.resolve(answer(502));
  held.exchange.abandon(failure("timeout", "late"));
  expect(((await held.exchange.result) as UpstreamResponse).status).toBe(200);
});
