/**
 * What each request in flight keeps alive in lb's heap, by JavaScriptCore's object type, against the bare ceiling
 * (bench/prototypes/bare-upstream.ts): a figure the machine's noise does not touch, unlike CPU time. Run by
 * bench/live-objects.sh, which starts it as the proxy's entry:
 *
 *   LIVE_ENTRY=src/main.ts LIVE_OUT=counts.json bun bench/live-objects.ts <lb's arguments>
 *
 * On SIGUSR2 it collects garbage fully and writes heapStats().objectTypeCounts to LIVE_OUT (a suffix counts up), so
 * the script can take one snapshot idle and one with requests held by a slow backend; the difference divided by
 * the requests held is what one request in flight keeps. On SIGUSR1 it writes them without collecting: with the
 * collector held off (bench/allocations.sh), two such snapshots around a batch of requests count every object the
 * batch allocated, dead or alive.
 */
import { heapStats } from "bun:jsc";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";

const entry = resolve(process.env.LIVE_ENTRY ?? "");
const out = process.env.LIVE_OUT;
if (!process.env.LIVE_ENTRY || !out) {
  process.stderr.write("usage: LIVE_ENTRY=<script> LIVE_OUT=<file> bun bench/live-objects.ts <its arguments>\n");
  process.exit(2);
}
let snapshots = 0;
const snapshot = () => writeFileSync(`${out}.${++snapshots}`, JSON.stringify(heapStats().objectTypeCounts));
process.on("SIGUSR2", () => {
  Bun.gc(true);
  snapshot();
});
process.on("SIGUSR1", snapshot);
process.argv = [process.argv[0]!, entry, ...process.argv.slice(2)];
await import(entry);
