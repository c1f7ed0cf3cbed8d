/**
 * Turns the raw figures bench/run.sh collected into its Markdown report: `bun bench/report.ts <work dir>`.
 * Reads meta.tsv, results.tsv, commands.tsv, warnings.txt, access-log.txt and the nginx and HAProxy configs from
 * the work dir and prints Markdown on stdout. Every figure is the median over the repetitions; the lb ratios divide
 * lb's medians by HAProxy's and nginx's medians from the same run.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: bun bench/report.ts <work dir written by bench/run.sh>\n");
  process.exit(2);
}

const read = (name: string): string => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), "utf8") : "");
const lines = (text: string): string[] => text.split("\n").filter((line) => line.trim() !== "");

/** key → value from a file of `key<TAB>value` lines. */
function keyValues(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of lines(text)) {
    const tab = line.indexOf("\t");
    if (tab > 0) map.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return map;
}

const meta = keyValues(read("meta.tsv"));
const m = (key: string): string => meta.get(key) ?? "?";

interface Sample {
  proxy: string;
  conns: number;
  path: string;
  rep: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  rssKb: number | null;
  cpu0: number;
  cpu1: number;
  upstream: number;
}

function parseResults(text: string): Sample[] {
  const [header, ...rows] = lines(text);
  if (!header) return [];
  const names = header.split("\t");
  return rows.map((row) => {
    const cells = row.split("\t");
    const get = (name: string): string => cells[names.indexOf(name)] ?? "";
    const num = (name: string): number => Number(get(name));
    return {
      proxy: get("proxy"),
      conns: num("conns"),
      path: get("path"),
      rep: num("rep"),
      rps: num("rps"),
      p50: num("p50_ms"),
      p99: num("p99_ms"),
      errors: ["non2xx", "sock_connect", "sock_read", "sock_write", "sock_timeout"].reduce((s, n) => s + num(n), 0),
      rssKb: /^\d+$/.test(get("peak_rss_kb")) ? num("peak_rss_kb") : null,
      cpu0: num("cpu0_pct"),
      cpu1: num("cpu1_pct"),
      upstream: num("upstream_conns"),
    };
  });
}

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Summary {
  reps: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  errors: number;
  errorsTotal: number;
  rssKb: number;
  cpu0: number;
  cpu1: number;
  upstream: number;
}

const samples = parseResults(read("results.tsv"));
const runs: { conns: number; path: string }[] = [];
for (const s of samples) {
  if (!runs.some((r) => r.conns === s.conns && r.path === s.path)) runs.push({ conns: s.conns, path: s.path });
}
// "/" by concurrency first, then the other paths.
runs.sort((a, b) => (a.path === b.path ? a.conns - b.conns : a.path === "/" ? -1 : b.path === "/" ? 1 : 0));

function summary(proxy: string, conns: number, path: string): Summary | undefined {
  const mine = samples.filter((s) => s.proxy === proxy && s.conns === conns && s.path === path);
  if (mine.length === 0) return undefined;
  const rss = mine.flatMap((s) => (s.rssKb === null ? [] : [s.rssKb]));
  return {
    reps: mine.length,
    rps: median(mine.map((s) => s.rps)),
    rpsMin: Math.min(...mine.map((s) => s.rps)),
    rpsMax: Math.max(...mine.map((s) => s.rps)),
    p50: median(mine.map((s) => s.p50)),
    p99: median(mine.map((s) => s.p99)),
    errors: median(mine.map((s) => s.errors)),
    errorsTotal: mine.reduce((sum, s) => sum + s.errors, 0),
    rssKb: median(rss),
    cpu0: median(mine.map((s) => s.cpu0)),
    cpu1: median(mine.map((s) => s.cpu1)),
    upstream: median(mine.map((s) => s.upstream)),
  };
}

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");
const ms = (n: number): string => (!Number.isFinite(n) ? "—" : n < 1 ? n.toFixed(3) : n < 100 ? n.toFixed(2) : n.toFixed(0));
const ratio = (a: number, b: number): string =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : "—";
const pct = (n: number): string => (Number.isFinite(n) ? `${n >= 0 ? "+" : ""}${n.toFixed(1)}%` : "—");
const run = (conns: number, path: string): string => `c=${conns} \`${path}\``;
const table = (header: string[], rows: string[][]): string =>
  [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join(
    "\n",
  );

const multi = m("mode") === "multi";
const reps = Number(m("reps"));
const durationS = Number.parseInt(m("duration"), 10);
const proxies = ["direct", "lb", "lb+log", "bare", "nginx", "haproxy"].filter((p) => samples.some((s) => s.proxy === p));
const LABELS: Record<string, string> = {
  haproxy: "HAProxy",
  direct: "direct (1 run, no proxy)",
  bare: "bare (lb's ceiling)",
};
const label = (proxy: string): string => LABELS[proxy] ?? proxy;

const out: string[] = [];
const say = (...text: string[]): void => void out.push(...text);

say(`# lb benchmark, ${m("date")} (${multi ? "`--multi`: unpinned, multi-core peers" : "pinned: one core per proxy"})`, "");
if (durationS < 5 || reps < 3) {
  say(
    `> **Validation-length run** (DURATION=${m("duration")}, REPS=${m("reps")}): too short and too few repetitions`,
    "> to quote. Regenerate on a quiet machine with the defaults (`bun run bench`).",
    "",
  );
}
if (multi) {
  say(
    "> **Multi-core mode.** lb runs with `--workers 2` (two serving processes sharing the port, plus the primary),",
    `> set against nginx with \`worker_processes auto\` (${m("nproc")} workers on this machine) and HAProxy with`,
    "> `nbthread 2`. Nothing is pinned, so the proxies, wrk and the backends compete for the same cores; peak RSS",
    "> is the sum over each proxy's processes.",
    "",
  );
}
say(
  `- **Machine:** ${m("nproc")} CPUs (\`nproc\`), ${m("cpu_model")}; ${m("os")}, ${m("kernel")}; load average ` +
    `${m("load_before")} before, ${m("load_after")} after`,
  `- **Versions:** bun ${m("bun")}; ${m("nginx")}; ${m("haproxy")}; ${m("wrk")}; lb at \`${m("lb_commit")}\``,
  `- **Placement:** ${m("pinning")}`,
  `- **Load:** wrk, keep-alive, ${m("duration")} per run after a ${m("warmup")} warm-up at c=50 per proxy start; ` +
    (reps === 1
      ? "1 repetition (every proxy in turn); "
      : `${m("reps")} interleaved repetitions (each runs every proxy in turn, the first one rotating); `) +
    `${m("backends")} Bun backends (\`/\` 100 bytes, \`/big\` 64 KiB, \`/chunked\` the 100 bytes sent chunked), round robin everywhere`,
  `- **Figures:** medians over the repetitions. Errors = wrk's non-2xx responses + socket errors ` +
    "(connect, read, write, timeout). Peak RSS = the highest sum of VmRSS over the proxy's processes " +
    "(nginx master + workers), sampled every 100 ms during the run. CPU0/CPU1 = share of the run each CPU was " +
    "busy; at 100% that CPU was the limit. Upstream conns = established connections to the backends halfway through",
  `- **Started** ${m("started")}, took ${m("total_seconds")} s; open-file limit ${m("nofile")}, ` +
    `HAProxy maxconn ${m("haproxy_maxconn")}`,
  "",
  "## Results",
  "",
);

const rows: string[][] = [];
for (const { conns, path } of runs) {
  for (const proxy of proxies) {
    const s = summary(proxy, conns, path);
    if (!s) continue;
    rows.push([
      run(conns, path),
      label(proxy),
      int(s.rps),
      s.reps > 1 ? `${int(s.rpsMin)}–${int(s.rpsMax)}` : "—",
      ms(s.p50),
      ms(s.p99),
      s.errorsTotal === 0 ? "0" : `${int(s.errors)} (Σ ${int(s.errorsTotal)})`,
      Number.isFinite(s.rssKb) ? (s.rssKb / 1024).toFixed(1) : "—",
      `${int(s.cpu0)}%`,
      `${int(s.cpu1)}%`,
      int(s.upstream),
    ]);
  }
}
say(
  table(
    ["run", "proxy", "req/s", "req/s min–max", "p50 ms", "p99 ms", "errors", "peak RSS MiB", "CPU0", "CPU1", "upstream conns"],
    rows,
  ),
  "",
);

say(
  "## lb relative to HAProxy, nginx and its ceiling",
  "",
  "lb's median divided by the peer's median from this same run. req/s ratio below 1×: lb serves fewer requests " +
    "per second than the peer (0.50× = half). p99 ratio above 1×: lb's tail latency is longer (2.00× = twice). " +
    "bare is lb's ceiling (`bench/prototypes/bare-upstream.ts`): a bare `Bun.serve` handler forwarding through " +
    "lb's own upstream client with none of lb's logic; issue 28 aims at lb ≥ 0.9× of it, p99 ≤ 1.2×.",
  "",
);
const ratioRows: string[][] = [];
for (const variant of ["lb", "lb+log"]) {
  for (const { conns, path } of runs) {
    const lb = summary(variant, conns, path);
    if (!lb) continue;
    const ha = summary("haproxy", conns, path);
    const ng = summary("nginx", conns, path);
    const bare = summary("bare", conns, path);
    ratioRows.push([
      variant,
      run(conns, path),
      int(lb.rps),
      ratio(lb.rps, ha?.rps ?? NaN),
      ratio(lb.rps, ng?.rps ?? NaN),
      ratio(lb.rps, bare?.rps ?? NaN),
      ms(lb.p99),
      ratio(lb.p99, ha?.p99 ?? NaN),
      ratio(lb.p99, ng?.p99 ?? NaN),
      ratio(lb.p99, bare?.p99 ?? NaN),
    ]);
  }
}
say(
  table(
    ["lb", "run", "req/s", "req/s ÷ HAProxy", "req/s ÷ nginx", "req/s ÷ bare", "p99 ms", "p99 ÷ HAProxy", "p99 ÷ nginx", "p99 ÷ bare"],
    ratioRows,
  ),
  "",
);

say(
  "## Access-log cost",
  "",
  `lb with \`--access-log-format json\` (to ${m("access_log")}) against lb with \`--no-access-log\`, same run, medians.`,
  "",
);
const logRows: string[][] = [];
for (const { conns, path } of runs) {
  const off = summary("lb", conns, path);
  const on = summary("lb+log", conns, path);
  if (!off || !on) continue;
  logRows.push([
    run(conns, path),
    int(off.rps),
    int(on.rps),
    pct(((on.rps - off.rps) * 100) / off.rps),
    ms(off.p99),
    ms(on.p99),
    pct(((on.p99 - off.p99) * 100) / off.p99),
  ]);
}
say(table(["run", "lb req/s", "lb+log req/s", "req/s change", "lb p99 ms", "lb+log p99 ms", "p99 change"], logRows), "");
const accessLogNote = read("access-log.txt").trim();
if (accessLogNote) say(accessLogNote, "");

say("## Commands", "", "```sh");
const commands = read("commands.tsv");
for (const line of lines(commands)) {
  const [name, command] = line.split("\t");
  say(`# ${name}`, command ?? "");
}
say("```", "");
for (const [title, file, lang] of [
  ["nginx.conf", "nginx/nginx.conf", "nginx"],
  ["haproxy.cfg", "haproxy/haproxy.cfg", "haproxy"],
] as const) {
  const text = read(file).trimEnd();
  if (text) say(`<details><summary>${title}</summary>`, "", "```" + lang, text, "```", "", "</details>", "");
}

const warnings = lines(read("warnings.txt"));
say("## Warnings and errors the proxies logged", "");
if (warnings.length === 0) say("None.");
else say("```", ...warnings.map((w) => w.trim()), "```");

process.stdout.write(out.join("\n") + "\n");
