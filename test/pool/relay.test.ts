/** The relay a pool emits into before the parts built from it exist: what it passes on, and when. */
import { expect, test } from "bun:test";
import { Pool, type PoolEvent } from "../../src/pool/pool.ts";
import { Relay } from "../../src/pool/relay.ts";

test("a pool's events reach the receiver connected after the pool was built, in order; none before it", () => {
  const changes = new Relay<[PoolEvent]>();
  const pool = new Pool([{ url: "http://a:1", weight: 1 }], { listener: changes.emit });
  const a = pool.find("http://a:1")!;
  pool.recordCheck(a, { ok: true, reason: "status 200" }); // before connect(): nothing is built to care yet
  const seen: string[] = [];
  changes.connect((event) => seen.push(`${event.type} ${event.backend.url}`));
  pool.setAdminState(a, "draining");
  pool.recordCheck(a, { ok: false, reason: "status 500" });
  expect(seen).toEqual(["admin http://a:1", "health http://a:1"]);
});
