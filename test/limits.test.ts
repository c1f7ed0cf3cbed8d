/** Client-side limits: request body size. */
import { afterAll, expect, test } from "bun:test";
import { rawRequest, startBackend, startTestLb } from "./helpers.ts";

const backend = startBackend("echo", async (request) => new Response(`got ${(await request.arrayBuffer()).byteLength}`));
const lb = await startTestLb([backend.url], { "max-body-size": "1k", "health-interval": "1m" });
afterAll(async () => {
  await lb.stop();
  await backend.stop();
});

test("a body over --max-body-size gets 413 and never reaches the backend; smaller ones pass", async () => {
  const small = await fetch(`${lb.url}/up`, { method: "POST", body: "x".repeat(500) });
  expect(await small.text()).toBe("got 500");
  const before = backend.seen.length;
  const big = await rawRequest(lb.lb.port, `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n${"x".repeat(2048)}`);
  expect(big).toStartWith("HTTP/1.1 413");
  const chunked = await rawRequest(
    lb.lb.port,
    `POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n${"x".repeat(2048)}\r\n0\r\n\r\n`,
  );
  expect(chunked).toStartWith("HTTP/1.1 413");
  expect(backend.seen.length).toBe(before);
});
