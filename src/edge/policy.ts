/**
 * A route's or a pool's edge policy as it runs: who may come (allow/deny), how often (a rate limit), and what the
 * fields sent each way get (header rules). Built from settings once per config (configure.ts makes them; the data
 * plane compiles them and keeps rate tables across reloads); a route or pool with none of them has no policy at all,
 * so it costs nothing per request.
 */
import type { HeaderRules, Rate, RateKey } from "../config/edge-values.ts";
import { cookieValue } from "../balance/request-keys.ts";
import { type Cidr, inRanges } from "../net/ip.ts";
import { type CompiledRules, type PlaceholderValues, compileRules } from "./header-rules.ts";
import type { RateLimiter } from "./rate-limit.ts";

/** A rate limit as configured, and the table it counts in: one per pool, or per route that sets its own. */
export interface RateLimitSettings {
  rate: Rate;
  burst: number;
  key: RateKey;
  /** Which table counts: "pool api", "route 2". Requests of every route that inherits its pool's limit share one. */
  table: string;
}

/** What one route or pool sets (configure.ts builds it from its effective settings). */
export interface EdgeSettings {
  /** Answers compressed for clients that accept it (proxy/compression.ts); null: none. */
  compression: CompressionSettings | null;
  allow: readonly Cidr[];
  deny: readonly Cidr[];
  rateLimit: RateLimitSettings | null;
  requestHeaders: HeaderRules;
  responseHeaders: HeaderRules;
}

/** Why lb turns a request away at the edge: the status, the detail for its short body, headers, the metric's reason. */
export interface EdgeRefusal {
  status: 403 | 429;
  detail: string;
  headers?: Record<string, string>;
  reason: "deny" | "rate-limit";
}

/** What a policy looks at in a request. */
export interface EdgeRequest {
  clientIp: string;
  headers: Headers;
}

const DENIED: EdgeRefusal = { status: 403, detail: "this address may not use this service", reason: "deny" };

/** `compress = true`: what proxy/compression.ts needs to decide for each answer. */
export interface CompressionSettings {
  /** Whole answers smaller than this many bytes go as they are (compressing them saves little and costs a round). */
  minSize: number;
}

export class EdgePolicy {
  /** How answers are compressed; null: they are not. */
  readonly compression: CompressionSettings | null;
  readonly #allow: readonly Cidr[] | null;
  readonly #deny: readonly Cidr[] | null;
  /** The last address the lists judged, and whether they refused it: a keep-alive client asks again and again. */
  #lastIp = "";
  #lastRefused = false;
  readonly #requestRules: CompiledRules | null;
  readonly #responseRules: CompiledRules | null;

  constructor(
    settings: EdgeSettings,
    /** The table its rate limit counts in (the data plane keeps them across reloads); null: no limit. */
    private readonly limiter: { table: RateLimiter; key: RateKey } | null,
    /** A monotonic clock in ms: a wall clock stepped back would hold every key back as long. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.compression = settings.compression;
    this.#allow = settings.allow.length ? settings.allow : null;
    this.#deny = settings.deny.length ? settings.deny : null;
    this.#requestRules = compileRules(settings.requestHeaders);
    this.#responseRules = compileRules(settings.responseHeaders);
  }

  /** Whether this policy does anything; the data plane keeps none when not. */
  get active(): boolean {
    return Boolean(this.compression || this.#allow || this.#deny || this.limiter || this.#requestRules || this.#responseRules);
  }

  /** Why the request is turned away, or null: deny wins over allow, and a refused request counts toward no limit. */
  admit(request: EdgeRequest): EdgeRefusal | null {
    if ((this.#allow || this.#deny) && this.#refused(request.clientIp)) return DENIED;
    return this.limiter ? this.#limit(request, this.limiter) : null;
  }

  #refused(ip: string): boolean {
    if (ip !== this.#lastIp) {
      this.#lastRefused = Boolean((this.#deny && inRanges(ip, this.#deny)) || (this.#allow && !inRanges(ip, this.#allow)));
      this.#lastIp = ip;
    }
    return this.#lastRefused;
  }

  #limit(request: EdgeRequest, { table, key }: { table: RateLimiter; key: RateKey }): EdgeRefusal | null {
    const verdict = table.take(limitKey(key, request), this.now());
    if (verdict.allowed) return null;
    const { rate } = table;
    const retryAfter = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
    return {
      status: 429,
      detail: "too many requests; try again later",
      reason: "rate-limit",
      headers: {
        "retry-after": String(retryAfter),
        // draft-ietf-httpapi-ratelimit-headers: the quota per window, and what is left of it (none) and when it is back.
        "ratelimit-policy": `"lb";q=${rate.count};w=${Math.round(rate.periodMs / 1000)}`,
        ratelimit: `"lb";r=0;t=${retryAfter}`,
      },
    };
  }

  /** The fields for the backend, with the request rules applied. */
  requestFields(fields: Array<[string, string]>, values: PlaceholderValues): Array<[string, string]> {
    return this.#requestRules ? this.#requestRules.apply(fields, values) : fields;
  }

  /** The fields of the backend's answer, with the response rules applied. */
  responseFields(fields: Array<[string, string]>, values: PlaceholderValues): Array<[string, string]> {
    return this.#responseRules ? this.#responseRules.apply(fields, values) : fields;
  }
}

/**
 * The key a request counts under. One without the header or cookie (or with it empty) counts by its address, marked with a NUL (which no
 * header or cookie value holds) so a client cannot send a value that spends another client's address allowance.
 */
function limitKey(key: RateKey, request: EdgeRequest): string {
  if (key.kind === "ip") return request.clientIp;
  const value = key.kind === "header" ? request.headers.get(key.name) : cookieValue(request.headers, key.name);
  // An empty value says no more than a missing one: counting it under "" would put every such client in one bucket.
  return value || `\0${request.clientIp}`;
}
