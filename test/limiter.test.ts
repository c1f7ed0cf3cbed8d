import { describe, expect, test } from "bun:test";
import { Limiter } from "../src/proxy/limiter.ts";

describe("upstream limiter", () => {
  test("grants up to max at once, then queues in FIFO order", async () => {
    const limiter = new Limiter(2);
    const never = new AbortController().signal;
    await limiter.acquire(never);
    expect(limiter.tryAcquire()).toBe(true);
    expect(limiter.tryAcquire()).toBe(false);
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) => limiter.acquire(never).then(() => order.push(n)));
    expect(limiter.queued).toBe(3);
    limiter.release();
    limiter.release();
    await Promise.all(waiting.slice(0, 2));
    expect(order).toEqual([1, 2]);
    expect(limiter.active).toBe(2);
    limiter.release();
    await waiting[2];
    expect(order).toEqual([1, 2, 3]);
    for (let i = 0; i < 2; i++) limiter.release();
    expect(limiter.active).toBe(0);
  });

  test("a waiter that gives up leaves the queue and is rejected with the reason", async () => {
    const limiter = new Limiter(1);
    limiter.tryAcquire();
    const quitter = new AbortController();
    const gaveUp = limiter.acquire(quitter.signal);
    const patient = limiter.acquire(new AbortController().signal);
    quitter.abort(new Error("client left"));
    expect(gaveUp).rejects.toThrow("client left");
    expect(limiter.queued).toBe(1);
    limiter.release();
    await patient;
    expect(limiter.active).toBe(1);
  });

  test("an already aborted signal is refused at once", async () => {
    const limiter = new Limiter(0);
    expect(limiter.acquire(AbortSignal.abort(new Error("gone")))).rejects.toThrow("gone");
    expect(limiter.queued).toBe(0);
  });
});
