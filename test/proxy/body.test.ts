import { describe, expect, test } from "bun:test";
import { prepareBody } from "../../src/proxy/body.ts";

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

describe("a body read in part streams on whole", () => {
  /** A chunked body (no Content-Length) larger than the limit: read ahead in part, then rejoined. */
  const inPart = (source: ReadableStream<Uint8Array>) => prepareBody(new Request("http://lb/", { method: "POST", body: source }), 4);

  test("passes bytes unchanged and in order: what was read ahead first, then the rest", async () => {
    const prepared = await inPart(streamOf([bytes(3, 1), bytes(4, 2), bytes(2, 3)]));
    expect(prepared.replayable).toBe(false);
    expect(new Uint8Array(await new Response(prepared.body).arrayBuffer())).toEqual(new Uint8Array([1, 1, 1, 2, 2, 2, 2, 3, 3]));
  });

  test("a source that fails after the read-ahead fails the stream; a cancel reaches the source", async () => {
    let sent = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 2) controller.enqueue(bytes(3));
        else controller.error(new Error("client died"));
      },
    });
    const failed = await inPart(failing);
    await expect(new Response(failed.body).arrayBuffer()).rejects.toThrow("client died");

    let cancelled: unknown = null;
    const endless = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(bytes(3)),
      cancel: (reason) => void (cancelled = reason),
    });
    const reader = ((await inPart(endless)).body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel("client went away");
    expect(cancelled).toBe("client went away");
  });
});
