/**
 * Server-sent events through lb: each event reaches the client as it is sent (no buffering), and a stream that
 * outlasts the 10 s client idle timeout is not cut while data flows.
 */
import { afterAll, expect, test } from "bun:test";
import { startBackend, startTestLb } from "./helpers.ts";

const EVENTS = 6;
const GAP_MS = 2200;
const sse = startBackend("sse", (request) => {
  if (new URL(request.url).pathname === "/") return new Response("ok");
  let n = 0;
  return new Response(
    new ReadableStream({
      async pull(controller) {
        if (n === EVENTS) return controller.close();
        if (n > 0) await Bun.sleep(GAP_MS);
        controller.enqueue(new TextEncoder().encode(`data: ${n++}\n\n`));
      },
    }),
    { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
  );
});
const lb = await startTestLb([sse.url], { "health-interval": "1m" });
afterAll(async () => {
  await lb.stop();
  await sse.stop();
});

test("events arrive one by one, and the stream lives past the idle timeout", async () => {
  const started = Date.now();
  const response = await fetch(`${lb.url}/events`);
  expect(response.headers.get("content-type")).toBe("text/event-stream");
  const arrivals: Array<{ text: string; at: number }> = [];
  for await (const chunk of response.body!) arrivals.push({ text: new TextDecoder().decode(chunk), at: Date.now() - started });
  expect(arrivals.map((a) => a.text).join("")).toBe(Array.from({ length: EVENTS }, (_, i) => `data: ${i}\n\n`).join(""));
  // Unbuffered: the first event came long before the last one was sent.
  expect(arrivals[0]!.at).toBeLessThan(GAP_MS);
  expect(arrivals.at(-1)!.at).toBeGreaterThan((EVENTS - 1) * GAP_MS - 500);
}, 20_000);
