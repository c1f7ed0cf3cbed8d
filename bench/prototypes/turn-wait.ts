/**
 * What the rapid-reset turn (src/front/listeners.ts nextTurn) costs a request, without sockets: PER "requests" arrive
 * in one turn, each waits for the next turn and then runs a trivial handler; CPU per request with a setImmediate and a
 * promise of its own per request, with one shared by the turn's requests (what lb does), and without any wait.
 *
 *   taskset -c 0 bun bench/prototypes/turn-wait.ts [PER]      # PER = 100 by default (a flood brings more)
 */
import { nextTurn as sharedTurn } from "../../src/front/listeners.ts";

const PER = Number(process.argv[2] ?? 100);
const TURNS = 20_000;

const ownTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const noWait = () => Promise.resolve();
const handle = () => Promise.resolve(1);

/** CPU nanoseconds per request. */
async function run(wait: () => Promise<void>): Promise<number> {
  const start = process.cpuUsage();
  for (let turn = 0; turn < TURNS; turn++) {
    const requests: Promise<number>[] = [];
    for (let i = 0; i < PER; i++) requests.push(wait().then(handle));
    await new Promise<void>((resolve) => setTimeout(resolve, 0)); // a later turn: every wait is over
    await Promise.all(requests);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / (TURNS * PER);
}

for (let round = 0; round < 5; round++) {
  const own = await run(ownTurn);
  const shared = await run(sharedTurn);
  const none = await run(noWait);
  console.log(`${PER} a turn: own setImmediate ${own.toFixed(0)} ns, shared ${shared.toFixed(0)} ns, no wait ${none.toFixed(0)} ns per request`);
}
