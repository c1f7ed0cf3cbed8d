/** IdleList: a backend's idle connections in release order, threaded through the items themselves. */
import { expect, test } from "bun:test";
import { type IdleLinks, IdleList } from "../../src/upstream/idle-list.ts";

class Item implements IdleLinks<Item> {
  idleSince = -1;
  idlePrevious: Item | null = null;
  idleNext: Item | null = null;
  constructor(readonly name: string) {}
}

const names = (list: IdleList<Item>) => list.items().map((item) => item.name);

test("items leave from the start, the middle and the end; oldest first throughout; a second removal is refused", () => {
  const list = new IdleList<Item>();
  const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => new Item(name)) as [Item, Item, Item, Item];
  list.add(a, 1);
  list.add(b, 2);
  list.add(c, 3);
  list.add(d, 4);
  expect({ names: names(list), size: list.size, oldest: list.oldest?.name, since: b.idleSince }).toEqual({
    names: ["a", "b", "c", "d"],
    size: 4,
    oldest: "a",
    since: 2,
  });
  expect(list.remove(b)).toBe(true); // the middle
  expect(list.remove(b)).toBe(false);
  expect(list.remove(a)).toBe(true); // the start
  expect(list.remove(d)).toBe(true); // the end
  expect({ names: names(list), size: list.size, oldest: list.oldest?.name }).toEqual({
    names: ["c"],
    size: 1,
    oldest: "c",
  });
  list.add(a, 5); // back at the end, idle anew
  const after = { names: names(list), since: a.idleSince, removedSince: b.idleSince };
  expect(after).toEqual({ names: ["c", "a"], since: 5, removedSince: -1 });
  expect(list.remove(c) && list.remove(a)).toBe(true);
  expect({ names: names(list), size: list.size, oldest: list.oldest }).toEqual({ names: [], size: 0, oldest: null });
});

test("items() is a copy: taking every item out while going through it leaves none", () => {
  const list = new IdleList<Item>();
  for (const name of ["a", "b", "c"]) list.add(new Item(name), 0);
  for (const item of list.items()) list.remove(item);
  expect({ size: list.size, names: names(list) }).toEqual({ size: 0, names: [] });
});
