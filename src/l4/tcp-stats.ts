/**
 * The layer-4 counts, per listen address: connections, those open now, bytes each way, and connections lb closed
 * itself, by reason. Kept by the TCP service across reloads; /metrics and the dashboard read them.
 */

/** Why lb closed a connection before relaying it (lb_tcp_rejected_total's reason label). */
export type TcpRejection = "no-sni-match" | "bad-hello" | "hello-timeout" | "no-backend";

export class ListenerCounts {
  /** Connections accepted. */
  connections = 0;
  active = 0;
  /** Bytes from clients to backends. */
  bytesIn = 0;
  /** Bytes from backends to clients. */
  bytesOut = 0;
  readonly rejected = new Map<TcpRejection, number>();

  reject(reason: TcpRejection): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }
}

export class TcpStats {
  readonly listeners = new Map<string, ListenerCounts>();

  of(listen: string): ListenerCounts {
    let counts = this.listeners.get(listen);
    if (!counts) this.listeners.set(listen, (counts = new ListenerCounts()));
    return counts;
  }
}

const label = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"');

/** The Prometheus lines of the TCP counts (none without [[tcp]] listeners). */
export function tcpMetricLines(stats: TcpStats): string[] {
  if (stats.listeners.size === 0) return [];
  const rows = [...stats.listeners].map(([listen, counts]) => ({ at: `listen="${label(listen)}"`, counts }));
  const family = (name: string, type: string, help: string, lines: string[]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines];
  return [
    ...family("lb_tcp_connections_total", "counter", "Connections accepted by each [[tcp]] listener.", rows.map(({ at, counts }) => `lb_tcp_connections_total{${at}} ${counts.connections}`)),
    ...family("lb_tcp_connections_active", "gauge", "Connections open now on each [[tcp]] listener.", rows.map(({ at, counts }) => `lb_tcp_connections_active{${at}} ${counts.active}`)),
    ...family(
      "lb_tcp_bytes_total",
      "counter",
      "Bytes relayed by each [[tcp]] listener: in from clients to backends, out from backends to clients.",
      rows.flatMap(({ at, counts }) => [`lb_tcp_bytes_total{${at},direction="in"} ${counts.bytesIn}`, `lb_tcp_bytes_total{${at},direction="out"} ${counts.bytesOut}`]),
    ),
    ...family(
      "lb_tcp_rejected_total",
      "counter",
      "Connections lb closed before relaying them, by reason: no-sni-match, bad-hello, hello-timeout, no-backend.",
      rows.flatMap(({ at, counts }) => [...counts.rejected].map(([reason, n]) => `lb_tcp_rejected_total{${at},reason="${reason}"} ${n}`)),
    ),
  ];
}

/** The dashboard's view (GET /api/stats). */
export function tcpStatsJson(stats: TcpStats) {
  return [...stats.listeners].map(([listen, c]) => ({
    listen,
    connections: c.connections,
    active: c.active,
    bytesIn: c.bytesIn,
    bytesOut: c.bytesOut,
    rejected: [...c.rejected.values()].reduce((sum, n) => sum + n, 0),
  }));
}
