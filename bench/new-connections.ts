/**
 * A client that opens a new connection for every request (HTTPS, the certificate not verified): CONCURRENCY loops for
 * SECONDS, then one JSON line: the answers with status 200, and every failure by its error code or status.
 *   bun bench/new-connections.ts https://127.0.0.1:8443/ 8 20
 */
const [url, seconds = "8", concurrency = "20"] = process.argv.slice(2);
if (!url) throw new Error("usage: bun bench/new-connections.ts URL [SECONDS] [CONCURRENCY]");
const end = Date.now() + Number(seconds) * 1000;
let ok = 0;
const failures: Record<string, number> = {};
const fail = (why: string) => void (failures[why] = (failures[why] ?? 0) + 1);

async function loop(): Promise<void> {
  while (Date.now() < end) {
    try {
      const response = await fetch(url!, { keepalive: false, tls: { rejectUnauthorized: false } });
      await response.arrayBuffer();
      if (response.status === 200) ok++;
      else fail(`status ${response.status}`);
    } catch (error) {
      fail((error as { code?: string }).code ?? String(error));
    }
  }
}

await Promise.all(Array.from({ length: Number(concurrency) }, loop));
console.log(JSON.stringify({ ok, failures }));

export {};
