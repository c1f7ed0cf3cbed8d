import { describe, expect, test } from "bun:test";
import { prepareBody, readArrived, watchBody } from "../src/proxy/body.ts";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
  });
}
const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);
const post = (body: Uint8Array | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) => new Request("http://x/", { method: "POST", body, headers });

describe("prepareBody", () => {
  test("no body is replayable", async () => {
    expect(await prepareBody(new Request("http://x/"))).toEqual({ replayable: true, body: null });
  });

  test("a small body, even chunked, is kept whole for retries", async () => {
    const prepared = await prepareBody(post(streamOf([bytes(10, 1), bytes(20, 2)])), 100);
    expect(prepared.replayable).toBe(true);
    expect(prepared.body).toEqual(new Uint8Array([...bytes(10, 1), ...bytes(20, 2)]));
  });

  test("a body that outgrows the limit streams once, with every byte in order", async () => {
    const chunks = [bytes(60, 1), bytes(60, 2), bytes(60, 3)];
    const prepared = await prepareBody(post(streamOf([...chunks])), 100);
    expect(prepared.replayable).toBe(false);
    const received = new Uint8Array(await new Response(prepared.body).arrayBuffer());
    expect(received).toEqual(new Uint8Array([...chunks[0]!, ...chunks[1]!, ...chunks[2]!]));
  });

  test("a declared Content-Length above the limit is not read ahead at all", async () => {
    const prepared = await prepareBody(post(bytes(200), { "content-length": "200" }), 100);
    expect(prepared.replayable).toBe(false);
    expect(new Uint8Array(await new Response(prepared.body).arrayBuffer()).length).toBe(200);
  });
});

describe("watchBody", () => {
  test("passes bytes unchanged and reports the count once at the end", async () => {
    const ends: number[] = [];
    const watched = watchBody(streamOf([bytes(3, 1), bytes(4, 2)]), (n) => ends.push(n));
    expect(new Uint8Array(await new Response(watched).arrayBuffer())).toEqual(new Uint8Array([1, 1, 1, 2, 2, 2, 2]));
    expect(ends).toEqual([7]);
  });

  test("reports a failed source with its error, and a cancelled one without", async () => {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("backend died"));
      },
    });
    const errors: unknown[] = [];
    await new Response(watchBody(failing, (_, e) => errors.push(e))).arrayBuffer().catch(() => {});
    expect(String(errors[0])).toContain("backend died");

    const ends: Array<[number, unknown]> = [];
    const watched = watchBody(streamOf([bytes(5), bytes(5)]), (n, e) => ends.push([n, e]));
    const reader = watched.getReader();
    await reader.read();
    await reader.cancel("client went away");
    expect(ends).toEqual([[5, undefined]]);
  });
});

describe("readArrived", () => {
  /** A stream that gives `now` at once, then each of `later` only after a real delay (a backend still sending). */
  function arriving(now: Uint8Array[], later: Uint8Array[] = []): ReadableStream<Uint8Array> {
    return new ReadableStream({
      async pull(controller) {
        const next = now.shift();
        if (next) return controller.enqueue(next);
        const delayed = later.shift();
        if (!delayed) return controller.close();
        await Bun.sleep(20);
        controller.enqueue(delayed);
      },
    });
  }

  test("a body that has arrived whole comes back as bytes", async () => {
    expect(await readArrived(arriving([bytes(3, 1), bytes(2, 2)]), 100)).toEqual(new Uint8Array([1, 1, 1, 2, 2]));
  });

  test("a body still arriving comes back at once as what arrived plus the rest, every byte in order", async () => {
    const arrived = await readArrived(arriving([bytes(3, 1)], [bytes(2, 2), bytes(1, 3)]), 100);
    expect(arrived).not.toBeInstanceOf(Uint8Array);
    const ends: number[] = [];
    const watched = watchBody(arrived as Exclude<typeof arrived, Uint8Array>, (n) => ends.push(n));
    expect(new Uint8Array(await new Response(watched).arrayBuffer())).toEqual(new Uint8Array([1, 1, 1, 2, 2, 3]));
    expect(ends).toEqual([6]);
  });

  test("past the limit it stops reading, even if more has arrived", async () => {
    const arrived = await readArrived(arriving([bytes(60, 1), bytes(60, 2), bytes(60, 3)]), 100);
    expect(arrived).not.toBeInstanceOf(Uint8Array);
    const { head } = arrived as Exclude<typeof arrived, Uint8Array>;
    expect(head.map((chunk) => chunk.length)).toEqual([60, 60]);
    const all = new Uint8Array(await new Response(watchBody(arrived as Exclude<typeof arrived, Uint8Array>, () => {})).arrayBuffer());
    expect(all.length).toBe(180);
  });

  test("a body that fails while it is read throws (nothing has been sent, so the caller can answer 502)", async () => {
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("bad chunk"));
      },
    });
    await expect(readArrived(failing, 100)).rejects.toThrow("bad chunk");
  });
});
