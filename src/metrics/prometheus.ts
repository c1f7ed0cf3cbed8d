/** The Prometheus text exposition (format 0.0.4) of lb's metrics, rendered on each scrape of /metrics. */
import { descriptorLimit, openDescriptors } from "./descriptors.ts";
import { BACKEND_STATES, type Backend, describeState, isAvailable } from "../pool/backend.ts";
import type { CertificateStatus } from "../front/certificates.ts";
import { BUILD_INFO } from "../version.ts";
import { type TcpStats, tcpMetricLines } from "../l4/tcp-stats.ts";
import { BACKEND_COUNTERS, BACKEND_HISTOGRAMS, COUNTER_NAMES, HISTOGRAM_NAMES, LATENCY_BUCKETS, type Metrics } from "./metrics.ts";

export interface ScrapeState {
  /** The backends of each pool, by pool name. */
  pools: ReadonlyMap<string, { readonly backends: readonly Backend[] }>;
  metrics: Metrics;
  /** Requests waiting for a backend with room (--max-inflight). */
  queued: number;
  /** Client requests and WebSocket tunnels open now. */
  clients: number;
  /** The certificates lb serves (files and --acme). */
  certificates: readonly CertificateStatus[];
  /** The [[tcp]] listeners' counts; absent or empty: no lines. */
  tcp?: TcpStats;
}

/** Each name's expiry; a name with two certificates (a file's and --acme's) shows the later one. */
function expiryByName(certificates: readonly CertificateStatus[]): Map<string, number> {
  const expiry = new Map<string, number>();
  for (const { names, facts } of certificates) {
    if (!facts) continue;
    for (const name of names) expiry.set(name, Math.max(expiry.get(name) ?? 0, facts.notAfter));
  }
  return expiry;
}

/** Label values escaped as the format requires (backslash, quote, newline). */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function renderPrometheus({ pools, metrics, queued, clients, certificates, tcp }: ScrapeState): string {
  const out: string[] = [];
  const poolOf = new Map<string, string>();
  for (const [name, pool] of pools) for (const backend of pool.backends) poolOf.set(backend.url, name);
  /** Every per-backend series carries its pool, so dashboards can sum by pool. */
  const of = (url: string) => `backend="${label(url)}",pool="${label(poolOf.get(url) ?? "")}"`;
  const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

  family("lb_requests_total", "counter", "Requests answered, by backend, status code and method.");
  for (const [url, m] of metrics.backends) {
    for (const [key, count] of m.requests) {
      const [code, method] = key.split(" ");
      out.push(`lb_requests_total{${of(url)},code="${code}",method="${label(method!)}"} ${count}`);
    }
  }
  for (const [code, count] of metrics.pool.unrouted) out.push(`lb_requests_total{backend="",pool="",code="${code}",method=""} ${count}`);
  family("lb_requests_rejected_total", "counter", "Requests lb turned away itself, by reason: max-connections, queue-full, queue-timeout, no-backend (503s), no-route (404), deny (403), rate-limit (429).");
  for (const [reason, count] of metrics.pool.rejected) out.push(`lb_requests_rejected_total{reason="${reason}"} ${count}`);
  family("lb_hook_errors_total", "counter", "Hook failures, by hook: onRequest, onResponse (threw, timed out, refused), escaped (an error from a timer, callback or promise of hook code).");
  for (const [hook, count] of metrics.pool.hookErrors) out.push(`lb_hook_errors_total{hook="${hook}"} ${count}`);
  const spans = metrics.pool.traceSpans;
  family("lb_trace_spans_exported_total", "counter", "Spans sent to the OTLP collector (0 while tracing is off).");
  out.push(`lb_trace_spans_exported_total ${spans.get("exported") ?? 0}`);
  family("lb_trace_spans_dropped_total", "counter", "Spans dropped, by reason: queue-full (the collector is slower than the traffic), export-failed (it refused or did not answer).");
  for (const reason of ["queue-full", "export-failed"]) out.push(`lb_trace_spans_dropped_total{reason="${reason}"} ${spans.get(reason) ?? 0}`);
  if (metrics.pool.proxyProtocol.size > 0) {
    family("lb_proxy_protocol_connections_total", "counter", "--accept-proxy connections by outcome: accepted (the header named the client), local (the balancer's own check), or closed: untrusted (a peer outside --proxy-trusted), invalid, truncated, timeout.");
    for (const [outcome, count] of metrics.pool.proxyProtocol) out.push(`lb_proxy_protocol_connections_total{outcome="${outcome}"} ${count}`);
  }

  for (const name of HISTOGRAM_NAMES) {
    const { metric, help } = BACKEND_HISTOGRAMS[name];
    family(metric, "histogram", help);
    for (const [url, m] of metrics.backends) {
      const { buckets, sum, count } = m.histograms[name];
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += buckets[i]!;
        out.push(`${metric}_bucket{${of(url)},le="${le}"} ${cumulative}`);
      });
      out.push(`${metric}_bucket{${of(url)},le="+Inf"} ${count}`);
      out.push(`${metric}_sum{${of(url)}} ${sum}`);
      out.push(`${metric}_count{${of(url)}} ${count}`);
    }
  }

  const perBackend = (name: string, type: string, help: string, value: (url: string) => number, urls: Iterable<string>) => {
    family(name, type, help);
    for (const url of urls) out.push(`${name}{${of(url)}} ${value(url)}`);
  };
  const declared = new Set<string>();
  for (const name of COUNTER_NAMES) {
    const { metric, type, help, labels } = BACKEND_COUNTERS[name] as { metric: string; type: string; help: string; labels?: string };
    if (!declared.has(metric)) family(metric, type, help); // counters that share a metric differ by a label
    declared.add(metric);
    for (const [url, m] of metrics.backends) out.push(`${metric}{${of(url)}${labels ? `,${labels}` : ""}} ${m[name]}`);
  }

  const current = new Map([...pools.values()].flatMap((pool) => pool.backends.map((b) => [b.url, b] as const)));
  perBackend("lb_backend_up", "gauge", "1 when the backend is in rotation, else 0.", (u) => (isAvailable(current.get(u)!) ? 1 : 0), current.keys());
  family("lb_backend_state", "gauge", "1 for the state the backend is in, 0 for the others (as HAProxy's exporter).");
  for (const [url, backend] of current) {
    const now = describeState(backend);
    for (const state of BACKEND_STATES) out.push(`lb_backend_state{${of(url)},state="${state}"} ${state === now ? 1 : 0}`);
  }
  perBackend("lb_backend_inflight", "gauge", "Requests in flight to the backend.", (u) => current.get(u)!.inflight, current.keys());
  perBackend("lb_backend_weight", "gauge", "The backend's configured weight.", (u) => current.get(u)!.weight, current.keys());

  family("lb_queue_depth", "gauge", "Requests waiting for a backend with room (--max-inflight).");
  out.push(`lb_queue_depth ${queued}`);
  family("lb_client_connections", "gauge", "Client requests in progress and WebSocket tunnels open (idle keep-alive connections are not seen).");
  out.push(`lb_client_connections ${clients}`);
  if (tcp) out.push(...tcpMetricLines(tcp));

  family("lb_tls_certificate_expiry_timestamp_seconds", "gauge", "When the certificate served for each name expires (its notAfter), files and --acme alike.");
  for (const [name, notAfter] of expiryByName(certificates)) out.push(`lb_tls_certificate_expiry_timestamp_seconds{name="${label(name)}"} ${notAfter / 1000}`);

  family("lb_config_reloads_total", "counter", "Config reloads (SIGHUP, the file changing, POST /api/reload), by result.");
  out.push(`lb_config_reloads_total{result="success"} ${metrics.reloads.success}`, `lb_config_reloads_total{result="failure"} ${metrics.reloads.failure}`);
  family("lb_config_last_reload_success_timestamp_seconds", "gauge", "When the config was last loaded successfully (the start counts).");
  out.push(`lb_config_last_reload_success_timestamp_seconds ${Math.floor(metrics.reloads.lastSuccessMs / 1000)}`);
  family("lb_build_info", "gauge", "Always 1; its labels say which lb this is.");
  out.push(`lb_build_info{version="${label(BUILD_INFO.version)}",commit="${label(BUILD_INFO.commit)}",bun="${label(BUILD_INFO.bun)}"} 1`);

  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out.push(`process_resident_memory_bytes ${memory.rss}`);
  family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  out.push(`process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`);
  family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.");
  out.push(`process_start_time_seconds ${Math.floor(metrics.startedAt / 1000)}`);
  family("process_open_fds", "gauge", "Open file descriptors.");
  out.push(`process_open_fds ${openDescriptors()}`);
  const limit = descriptorLimit();
  if (limit !== null) {
    family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    out.push(`process_max_fds ${limit}`);
  }
  return `${out.join("\n")}\n`;
}
