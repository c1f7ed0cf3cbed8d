/**
 * A slow but working backend is answered, not reset. Bun's idle timeout also runs while a handler awaits its
 * backend; lb suspends it for that wait. The backend here is slower than the client idle timeout (10 s).
 */
import { afterAll, expect, test } from "bun:test";
import { startBackend, startTestLb } from "./helpers.ts";

const slow = startBackend("slow", async (request) => {
  if (new URL(request.url).pathname === "/slow") await Bun.sleep(14_000);
  return new Response("worth the wait");
});
const lb = await startTestLb([slow.url], { "health-interval": "1m" });
afterAll(async () => {
  await lb.stop();
  await slow.stop();
});

test("a 14 s answer reaches the client", async () => {
  const response = await fetch(`${lb.url}/slow`);
  expect(response.status).toBe(200);
  expect(await response.text()).toBe("worth the wait");
  expect(lb.access.at(-1)!.upstreamMs).toBeGreaterThan(13_000);
}, 20_000);
