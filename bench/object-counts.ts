/**
 * The difference between two heap snapshots by object type (bench/live-objects.ts writes them), divided by a count of
 * requests: what each request kept alive (bench/live-objects.sh) or allocated (bench/allocations.sh). Prints one line.
 *
 *   bun bench/object-counts.ts <before.json> <after.json> <requests> <label> <what> <smallest shown> [--no-negative]
 *
 * --no-negative: a type that went down, or fewer than one Request per request, voids the count (a collection ran
 * between the two snapshots).
 */
import { readFileSync } from "node:fs";

const [beforeFile, afterFile, requests, label, what, smallest] = process.argv.slice(2);
const noNegative = process.argv.includes("--no-negative");
const read = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, number>;
const [before, after] = [read(beforeFile!), read(afterFile!)];
const per = Number(requests);
const rows: Array<[string, number]> = Object.keys(after)
  .map((type): [string, number] => [type, ((after[type] ?? 0) - (before[type] ?? 0)) / per])
  .filter(([, count]) => Math.abs(count) >= Number(smallest));
rows.sort((a, b) => b[1] - a[1]);
// Every request makes one Request: fewer means a collection freed some of what the batch made.
const requestObjects = ((after.Request ?? 0) - (before.Request ?? 0)) / per;
if (noNegative && (rows.some(([, count]) => count < 0) || requestObjects < 0.99)) {
  const why = `${requestObjects.toFixed(2)} Request per request`;
  throw new Error(`${label}: the collector ran between the snapshots (${why}); the count is void`);
}
const total = rows.reduce((sum, [, count]) => sum + count, 0);
const types = rows.map(([type, count]) => `${type} ${count.toFixed(2)}`).join(", ");
console.log(`${label}: ${total.toFixed(1)} objects per request${what}: ${types}`);
