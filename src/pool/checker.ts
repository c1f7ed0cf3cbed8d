/** The active health checks: the one place that probes backends. Results go to the pool's state machine. */
import type { HealthMethod, StatusRanges } from "../config/types.ts";
import { type ProxyVersion, encodeProxyHeader } from "../net/proxy-protocol.ts";
import { type UpstreamClient, isFailure } from "../upstream/client.ts";
import { type Failure, classifyFailure } from "../upstream/failure.ts";
import { HttpClient } from "../upstream/http-client.ts";
import { VERSION } from "../version.ts";
import type { Backend } from "./backend.ts";
import type { Observation } from "./health.ts";
import type { Pool } from "./pool.ts";

export interface CheckSettings {
  method: HealthMethod;
  /** "": no HTTP request, a TCP connect is the check (a pool of tcp:// backends without a health-path of its own). */
  path: string;
  /** Statuses that pass. */
  statuses: StatusRanges;
  /** Text the answer must contain; empty means no body check. */
  body: string;
  /** Extra request headers (a Host among them replaces the backend's). */
  headers: Array<[string, string]>;
  intervalMs: number;
  /** Interval while a backend is down (0: the same as intervalMs). */
  downIntervalMs: number;
  timeoutMs: number;
  /** Each delay is spread by up to ± this percentage. */
  jitterPercent: number;
  /** How https:// backends are verified; undefined: the system's CAs. */
  tls: { ca?: string; rejectUnauthorized: boolean } | undefined;
  /**
   * The pool's send-proxy: checks start with a PROXY header too (on lb's own behalf: v2 LOCAL, v1 UNKNOWN), as
   * HAProxy's do by default for a server with send-proxy, or a backend that requires one would fail every check.
   */
  sendProxy?: ProxyVersion;
}

export function statusPasses(status: number, ranges: StatusRanges): boolean {
  return ranges.some(([low, high]) => status >= low && status <= high);
}

export function describeStatuses(ranges: StatusRanges): string {
  return ranges.map(([low, high]) => (low === high ? String(low) : `${low}-${high}`)).join(",");
}

/** A health answer is read this far, no further: a health path that streams a huge body must not fill memory. */
export const HEALTH_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * The first `limit` bytes of the body as text. A short body is read to its end, so the connection can be reused by
 * the next check; a longer one is cut off and its connection dropped.
 */
async function readPrefix(response: Response, limit: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  while (size < limit) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    size += value.byteLength;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return text;
}

/** A check's answer: its status and the start of its body. */
interface Answer {
  status: number;
  text: string;
}

/**
 * One check: `<method> <backend><path>`; an accepted status (and body text) within the timeout passes. It goes by
 * fetch, or through `client` (lb's own, for a pool with send-proxy: fetch cannot write a PROXY header). A tcp://
 * backend is checked by connecting, or over plain HTTP on the same port when its pool sets a health-path.
 */
export async function checkBackend(backend: Backend, settings: CheckSettings, client?: UpstreamClient): Promise<Observation> {
  if (settings.path === "") return connectCheck(backend.url, settings.timeoutMs, settings.sendProxy);
  const headers: Array<[string, string]> = [["user-agent", `lb-health-check/${VERSION}`], ["accept", "*/*"], ...settings.headers];
  try {
    const { status, text } = client ? await askThrough(client, backend, settings, headers) : await askWithFetch(backend, settings, headers);
    if (!statusPasses(status, settings.statuses)) {
      return { ok: false, reason: `status ${status}, expected ${describeStatuses(settings.statuses)}` };
    }
    if (settings.body && !text.includes(settings.body)) {
      return { ok: false, reason: `status ${status} but the body lacks "${settings.body}"` };
    }
    return { ok: true, reason: `status ${status}` };
  } catch (error) {
    return failedCheck(error, settings.timeoutMs);
  }
}

function failedCheck(error: unknown, timeoutMs: number): Observation {
  const failure = (error as Failure).kind ? (error as Failure) : classifyFailure(error);
  if (failure.kind === "timeout") return { ok: false, reason: `no answer within ${timeoutMs}ms`, unanswered: true };
  if (failure.kind === "local") return { ok: false, reason: failure.reason, inconclusive: true };
  return { ok: false, reason: failure.reason };
}

/**
 * A TCP connect within the timeout passes; the connection is closed at once, nothing sent but, with send-proxy, a
 * PROXY header on lb's own behalf (v1 UNKNOWN, v2 LOCAL), so a backend that expects one sees no broken header.
 */
async function connectCheck(url: string, timeoutMs: number, sendProxy: ProxyVersion | undefined): Promise<Observation> {
  const { hostname, port } = new URL(url);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<Observation>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `no connection within ${timeoutMs}ms`, unanswered: true }), timeoutMs);
  });
  const connected = Bun.connect({ hostname: hostname.replace(/^\[|\]$/g, ""), port: Number(port), socket: { data() {} } }).then(
    (socket): Observation => {
      // Also when the timeout won: a late connection is not left open.
      if (sendProxy) socket.end(encodeProxyHeader(sendProxy, null));
      else socket.end();
      return { ok: true, reason: "connected" };
    },
    (error: unknown) => failedCheck(error, timeoutMs),
  );
  try {
    return await Promise.race([connected, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** A tcp:// backend's HTTP check goes to the same host and port over plain HTTP. */
const httpUrl = (url: string) => url.replace(/^tcp:/, "http:");

async function askWithFetch(backend: Backend, settings: CheckSettings, headers: Array<[string, string]>): Promise<Answer> {
  const response = await fetch(httpUrl(backend.url) + settings.path, {
    method: settings.method,
    headers,
    redirect: "manual",
    decompress: true,
    signal: AbortSignal.timeout(settings.timeoutMs),
    tls: settings.tls,
  });
  return { status: response.status, text: await readPrefix(response, HEALTH_BODY_LIMIT_BYTES) };
}

/** The check through lb's own client, on a connection of its own (closed after the answer); throws its Failure. */
async function askThrough(client: UpstreamClient, backend: Backend, settings: CheckSettings, headers: Array<[string, string]>): Promise<Answer> {
  const request = { method: settings.method, target: settings.path, headers, body: null, client: null, timeoutMs: settings.timeoutMs };
  const answer = await client.send(httpUrl(backend.url), request).result;
  if (isFailure(answer)) throw answer;
  return { status: answer.status, text: await readPrefix(new Response(answer.body), HEALTH_BODY_LIMIT_BYTES) };
}

/**
 * The delay before a backend's next check: the interval (the down interval while it is down), spread by up to
 * ± jitter so many backends' checks drift apart instead of firing together.
 */
export function nextCheckDelay(backend: Backend, settings: CheckSettings, random: () => number): number {
  const down = backend.health.status === "unhealthy" && settings.downIntervalMs > 0;
  const base = down ? settings.downIntervalMs : settings.intervalMs;
  const spread = (base * settings.jitterPercent) / 100;
  return Math.max(1, Math.round(base + (random() * 2 - 1) * spread));
}

/**
 * A backend whose first check fails is checked again this soon: it is often still starting (lb and its backends
 * launched together), and waiting a whole interval would answer 503 meanwhile.
 */
const FIRST_RECHECK_MS = 500;

/** Checks every backend on its own timer; the first round runs for all at once. */
export class HealthChecker {
  readonly #timers = new Map<Backend, ReturnType<typeof setTimeout> | null>();
  readonly #firstChecks = new Map<Backend, Promise<void>>();
  #stopped = false;
  /** lb's own client for checks that start with a PROXY header (send-proxy); made when first needed. */
  #proxied: HttpClient | null = null;

  constructor(
    private readonly pool: Pool,
    private settings: CheckSettings,
    /** Told every result, for metrics. */
    private readonly onResult: (backend: Backend, ok: boolean) => void = () => {},
    private readonly random: () => number = Math.random,
  ) {}

  /** Runs the first round now (so the first request already avoids dead backends), then keeps going. */
  async start(): Promise<void> {
    await Promise.all(this.pool.backends.map((backend) => this.watch(backend)));
  }

  /**
   * Checks a backend now, then on its timer until unwatch(). Resolves when the first check is done; watching a
   * backend again just waits for that.
   */
  watch(backend: Backend): Promise<void> {
    let first = this.#firstChecks.get(backend);
    if (!first) {
      this.#timers.set(backend, null);
      first = this.#check(backend).then(() => this.#schedule(backend, FIRST_RECHECK_MS));
      this.#firstChecks.set(backend, first);
    }
    return first;
  }

  unwatch(backend: Backend): void {
    clearTimeout(this.#timers.get(backend) ?? undefined);
    this.#timers.delete(backend);
    this.#firstChecks.delete(backend);
  }

  /** New rules take effect from each backend's next check. */
  reconfigure(settings: CheckSettings): void {
    this.settings = settings;
  }

  stop(): void {
    this.#stopped = true;
    for (const backend of [...this.#timers.keys()]) this.unwatch(backend);
    this.#proxied?.close();
  }

  /** The client a check goes through: none (fetch), or one whose connections start with the pool's PROXY header. */
  #client(): UpstreamClient | undefined {
    const { sendProxy, timeoutMs, tls } = this.settings;
    if (!sendProxy) return undefined;
    const settings = { connectTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs, readTimeoutMs: timeoutMs, clientIdleMs: timeoutMs, tls, sendProxy };
    if (this.#proxied) this.#proxied.configure(settings);
    else this.#proxied = new HttpClient(settings);
    return this.#proxied;
  }

  async #check(backend: Backend): Promise<void> {
    const startedAt = Date.now();
    const result = await checkBackend(backend, this.settings, this.#client());
    if (this.#stopped || !this.#timers.has(backend) || result.inconclusive) return;
    this.onResult(backend, result.ok);
    this.pool.recordCheck(backend, result, startedAt);
  }

  /** `soonest`: after a first check that failed, the next one comes at most this soon. */
  #schedule(backend: Backend, soonest = Number.POSITIVE_INFINITY): void {
    if (this.#stopped || !this.#timers.has(backend)) return;
    const delay = nextCheckDelay(backend, this.settings, this.random);
    const timer = setTimeout(async () => {
      await this.#check(backend);
      this.#schedule(backend);
    }, backend.health.status === "healthy" ? delay : Math.min(delay, soonest));
    this.#timers.set(backend, timer);
  }
}
