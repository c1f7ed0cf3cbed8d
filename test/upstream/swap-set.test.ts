/** SwapSet: objects that keep their own place in the set; one leaves by the last taking its place. */
import { expect, test } from "bun:test";
import { type SetMember, SwapSet } from "../../src/upstream/swap-set.ts";

type Named = SetMember & { name: string };
const member = (name: string): Named => ({ name, setIndex: -1 });
const names = (set: SwapSet<Named>) => set.members().map((m) => m.name).sort();

test("members leave from the start, the middle and the end; adding twice or deleting twice changes nothing", () => {
  const set = new SwapSet<Named>();
  const [a, b, c, d] = ["a", "b", "c", "d"].map(member) as [Named, Named, Named, Named];
  for (const m of [a, b, c, d, b]) set.add(m);
  expect({ size: set.size, names: names(set) }).toEqual({ size: 4, names: ["a", "b", "c", "d"] });
  set.delete(b); // the middle: d takes its place
  set.delete(b);
  const afterMiddle = { size: set.size, names: names(set), d: d.setIndex, b: b.setIndex };
  expect(afterMiddle).toEqual({ size: 3, names: ["a", "c", "d"], d: 1, b: -1 });
  set.delete(a);
  set.delete(c);
  expect({ size: set.size, names: names(set) }).toEqual({ size: 1, names: ["d"] });
  set.add(b);
  for (const m of set.members()) set.delete(m); // a copy: safe to empty the set while going through it
  const emptied = { size: set.size, names: names(set), indexes: [a, b, c, d].map((m) => m.setIndex) };
  expect(emptied).toEqual({ size: 0, names: [], indexes: [-1, -1, -1, -1] });
});
