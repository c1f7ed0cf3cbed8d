/**
 * A slow but working backend is answered, not reset. Bun's idle timeout also runs while a handler awaits its
 * backend; lb suspends it for that wait. Bun checks idle sockets every 4 s or so: with --client-timeout 1s, a request
 * whose handler waits is reset 1 to 5 s after it came (measured: 4.0 s for a wait of 4.2 s, 1.3 to 4.0 s for 6 s).
 * So the backend here takes 6 s: longer than the latest such reset, and far longer than the client idle timeout.
 */
import { afterAll, expect, test } from "bun:test";
import { startBackend, startTestLb } from "../helpers.ts";

const slow = startBackend("slow", async (request) => {
  if (new URL(request.url).pathname === "/slow") await Bun.sleep(6000); // time passing is what is tested
  return new Response("worth the wait");
});
const lb = await startTestLb([slow.url], { "health-interval": "1m", "client-timeout": "1s" });
afterAll(async () => {
  await lb.stop();
  await slow.stop();
});

test("an answer 6 s late, past the 1 s client timeout and Bun's idle sweep, reaches the client", async () => {
  const response = await fetch(`${lb.url}/slow`);
  expect(response.status).toBe(200);
  expect(await response.text()).toBe("worth the wait");
  expect(lb.access.at(-1)!.upstreamMs).toBeGreaterThan(5900);
}, 12_000);
