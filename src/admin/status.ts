/** `lb status [--watch]`: the pool of a running lb as a table, coloured on a terminal, refreshed with --watch. */
import type { statsSnapshot } from "./stats.ts";
import type { ArgsDef } from "citty";
import type { HelpPage } from "../cli/cli.ts";
import { ADMIN_ARGS, type Environment, adminClient, formatTable, helpOptions } from "./client.ts";

type Stats = ReturnType<typeof statsSnapshot>;

export const STATUS_ARGS = {
  ...ADMIN_ARGS,
  watch: { type: "boolean", description: "Redraw every second until Ctrl-C" },
  json: { type: "boolean", description: "Print the raw /api/stats JSON" },
} as const satisfies ArgsDef;

export const STATUS_HELP: HelpPage = {
  description: "Show the pool of a running lb: state, requests/s, errors, latency, in-flight.",
  usage: ["lb status [--watch] [--json]"],
  sections: [{ title: "Options", options: helpOptions(STATUS_ARGS) }],
  examples: ["lb status --watch", "lb status --admin 10.0.0.1:7019 --admin-token $TOKEN --json"],
};

const COLOURS: Record<string, string> = {
  healthy: "32",
  unhealthy: "31",
  ejected: "33",
  draining: "35",
  disabled: "90",
  checking: "90",
};

export function renderStatus(stats: Stats, colour: boolean): string {
  const p = stats.pool;
  const summary =
    `${p.healthy}/${p.backends} healthy · ${p.rps} req/s · ${(p.errorRate * 100).toFixed(1)}% errors · ` +
    `${p.inflight} in flight · ${p.queued} queued · up ${stats.uptimeSeconds}s`;
  const header = ["ID", "POOL", "STATE", "REQ/S", "ERR%", "P50", "P99", "INFLIGHT", "WEIGHT", "SINCE"];
  const ms = (v: number | null) => (v === null ? "-" : `${v}ms`);
  const rows = stats.backends.map((b) => [
    b.id,
    b.pool,
    b.state,
    String(b.rps),
    (b.errorRate * 100).toFixed(1),
    ms(b.p50Ms),
    ms(b.p99Ms),
    String(b.inflight),
    String(b.weight),
    new Date(b.since).toLocaleTimeString(),
  ]);
  const paint = (cell: string, column: number) =>
    colour && column === 2 && COLOURS[cell] ? `\x1b[${COLOURS[cell]}m${cell}\x1b[0m` : cell;
  const pools = stats.pools.length > 1 ? `\n${stats.pools.map((pool) => `pool ${pool.name}: ${pool.healthy}/${pool.backends} healthy · ${pool.rps} req/s`).join("\n")}` : "";
  return `${summary}${pools}\n\n${formatTable(header, rows, paint)}`;
}

export async function runStatusCommand(argv: string[], env: Environment, tty: boolean): Promise<string> {
  const { args, call } = await adminClient(argv, STATUS_ARGS, "lb status", env);
  const fetchStats = async () => (await call("GET", "/api/stats")) as Stats;
  if (args.json) return JSON.stringify(await fetchStats(), null, 2);
  if (!args.watch) return renderStatus(await fetchStats(), tty);
  return watch(fetchStats, tty);
}

/** Redraws every second; ends only with the process (Ctrl-C). */
async function watch(fetchStats: () => Promise<Stats>, tty: boolean): Promise<never> {
  for (;;) {
    const text = renderStatus(await fetchStats(), tty);
    process.stdout.write(tty ? `\x1b[H\x1b[2J${text}\n` : `${text}\n\n`);
    await Bun.sleep(1000);
  }
}

