import { describe, expect, test } from "bun:test";
import { prepareBody, watchBody } from "../src/proxy/body.ts";

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
