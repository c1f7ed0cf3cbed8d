/** The forwarder's settings: what it works with for lb's lifetime, and the tuning a config reload replaces. */
import type { Policy } from "../balance/policy.ts";
import type { StickySessions } from "../balance/sticky.ts";
import type { AccessLog } from "../log/access-log.ts";
import type { Logger } from "../log/log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ProxyVersion } from "../net/proxy-protocol.ts";
import type { Pool } from "../pool/pool.ts";
import type { UpstreamClient } from "../upstream/client.ts";

/** What the forwarder works with; fixed for lb's lifetime. */
export interface ForwarderDeps {
  pool: Pool;
  /** The transport to backends. */
  upstream: UpstreamClient;
  accessLog: AccessLog | null;
  metrics: Metrics;
  log: Logger;
  /** The clock that tells a burst of resets from isolated ones (performance.now; a test steps its own). */
  now?: () => number;
}

/** How it behaves; a config reload replaces these. */
export interface ForwarderTuning {
  policy: Policy;
  /** Pins clients to backends by cookie; null when sticky sessions are off. */
  sticky: StickySessions | null;
  /** Longest wait for a backend's response headers, in ms. */
  timeoutMs: number;
  /** Further backends to try after a failed attempt. */
  retries: number;
  /** Retries in flight may be at most this percentage of requests in flight (but always at least 3). */
  retryBudgetPercent: number;
  /** Most requests in flight to one backend; 0 means no limit. */
  maxInflight: number;
  /** Requests waiting for a backend with room (when all are at maxInflight), and for how long at most. */
  queueSize: number;
  queueTimeoutMs: number;
  /** Longest silence from a client streaming a request body before lb gives up on it (408). */
  clientTimeoutMs: number;
  /** Sent with 503s: when a backend might be back (one health interval). */
  retryAfterSeconds: number;
  debug: boolean;
  /** The pool's send-proxy, for WebSocket tunnels (lb's HTTP client writes it for requests). */
  sendProxy?: ProxyVersion;
}

export type ForwarderOptions = ForwarderDeps & ForwarderTuning;
