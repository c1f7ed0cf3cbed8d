/**
 * DNS discovery: a backend marked `resolve` names a host that is looked up again every interval; lb keeps one
 * backend per address (A and AAAA), adds new addresses (checked before they take traffic), hands vanished ones over
 * (they serve on until another backend is in rotation, then drain out: a name whose addresses all change at once never
 * leaves the pool with nothing to send to), and keeps the last good set when a lookup fails or comes back empty. This
 * is how lb follows a Kubernetes headless Service or Consul DNS.
 */
import { Resolver } from "node:dns/promises";
import { type BackendSpec, hostInUrl } from "../config/backend-url.ts";
import { formatDuration } from "../config/duration.ts";
import type { Logger } from "../log/log.ts";
import { isAvailable } from "./backend.ts";
import type { HandOvers } from "./drain.ts";
import type { Pool } from "./pool.ts";

/** Looks up a name's addresses; the default asks DNS for A and AAAA records. */
export type Lookup = (hostname: string) => Promise<string[]>;

/** The backend URL for one address of a resolved name: same scheme and port, the address as host. */
export function addressUrl(spec: BackendSpec, address: string): string {
  const url = new URL(spec.url);
  url.hostname = hostInUrl(address);
  return url.protocol === "tcp:" ? `tcp://${url.host}` : url.origin;
}

/** A name with no records of one family is not a failure; only both families failing (or nothing at all) is. */
const NO_RECORDS = new Set(["ENOTFOUND", "ENODATA", "NOTFOUND", "NODATA"]);

export function dnsLookup(server: string): Lookup {
  // Bounded, so a DNS outage is noticed within seconds and never stalls a refresh for long.
  const resolver = new Resolver({ timeout: 1000, tries: 2 });
  if (server) resolver.setServers([server]);
  return async (hostname) => {
    const results = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    // One family timing out while the other answers is a failure too: its addresses must not be drained for it.
    const hard = failures.find((f) => !NO_RECORDS.has((f.reason as { code?: string }).code ?? ""));
    if (hard) throw hard.reason;
    return results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
  };
}

interface Group {
  spec: BackendSpec;
  /** Backend URLs this name resolved to last time it resolved to anything. */
  members: Set<string>;
  /** Backend URLs it gave before, handing over now: called off if the name gives them again meanwhile. */
  leaving: Set<string>;
  /** Whether the last lookup failed (so a failure is logged once, and a recovery too). */
  failing: boolean;
}

export class DnsDiscovery {
  #groups = new Map<string, Group>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly pool: Pool,
    /** The pool's backends on their way out, whoever dropped them (the config file too). */
    private readonly handOvers: HandOvers,
    private readonly lookup: Lookup,
    private readonly log: Logger,
    private readonly drainTimeoutMs: () => number,
  ) {}

  /** Sets the names to follow: new ones are resolved now, dropped ones have their backends handed over. */
  async follow(specs: readonly BackendSpec[]): Promise<void> {
    const wanted = new Map(specs.map((spec) => [spec.url, spec]));
    for (const [url, group] of this.#groups) {
      if (wanted.has(url)) continue;
      this.#groups.delete(url);
      this.#handOver(group, [...group.members]);
    }
    const fresh: Group[] = [];
    for (const [url, spec] of wanted) {
      const group = this.#groups.get(url);
      if (group) {
        group.spec = spec;
        for (const member of group.members) {
          const backend = this.pool.find(member);
          if (backend) this.pool.setWeight(backend, spec.weight);
        }
      } else {
        const created = { spec, members: new Set<string>(), leaving: new Set<string>(), failing: false };
        this.#groups.set(url, created);
        fresh.push(created);
      }
    }
    await Promise.all(fresh.map((group) => this.#refresh(group)));
  }

  /** Re-resolves every name each interval. */
  start(intervalMs: number): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => void this.refreshAll(), intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async refreshAll(): Promise<void> {
    await Promise.all([...this.#groups.values()].map((group) => this.#refresh(group)));
  }

  async #refresh(group: Group): Promise<void> {
    const { hostname } = new URL(group.spec.url);
    let addresses: string[];
    try {
      addresses = await this.lookup(hostname);
      if (addresses.length === 0) throw new Error("no addresses");
    } catch (error) {
      if (!group.failing) {
        const why = (error as { code?: string }).code ?? (error as Error).message;
        this.log.warn(`DNS lookup of ${hostname} failed (${why}): keeping its last ${group.members.size} backend(s)`);
      }
      group.failing = true;
      return;
    }
    if (group.failing) this.log.info(`DNS lookup of ${hostname} works again`);
    group.failing = false;
    if (!this.#groups.has(group.spec.url)) return; // dropped while the lookup ran
    const next = new Set(addresses.map((address) => addressUrl(group.spec, address)));
    for (const url of next) {
      const existing = this.pool.find(url);
      if (existing && group.members.has(url)) continue;
      if (existing && group.leaving.has(url)) {
        this.handOvers.callOff(existing); // back before it left
        group.leaving.delete(url);
        group.members.add(url);
        continue;
      }
      // An address another source (the file, the API) already lists stays theirs: DNS neither adopts nor drains it.
      if (existing) continue;
      try {
        this.pool.add({ url, weight: group.spec.weight });
        group.members.add(url);
      } catch (error) {
        this.log.warn(`DNS gave ${url} for ${hostname}, but it cannot be added: ${(error as Error).message}`);
      }
    }
    this.#handOver(group, [...group.members].filter((url) => !next.has(url)));
  }

  /** Addresses the name no longer gives: each serves on until another backend is in rotation, then drains out. */
  #handOver(group: Group, urls: readonly string[]): void {
    for (const url of urls) group.members.delete(url);
    const leaving = urls.flatMap((url) => this.pool.find(url) ?? []);
    if (leaving.length === 0) return;
    for (const backend of leaving) group.leaving.add(backend.url);
    const held = leaving.filter(isAvailable);
    const timeoutMs = this.drainTimeoutMs();
    const { hostname } = new URL(group.spec.url);
    this.handOvers.start(leaving, timeoutMs, (backend, how) => {
      if (!this.handOvers.isLeaving(backend)) group.leaving.delete(backend.url); // else it left once more since
      if (how === "timed out") {
        this.log.warn(`backend ${backend.name}, gone from DNS name ${hostname}, left at the drain timeout (${formatDuration(timeoutMs)}): no other backend came into rotation`);
      }
    });
    if (held.length > 0 && !this.handOvers.hasSuccessor()) {
      const names = held.map((backend) => backend.name).join(", ");
      this.log.info(`DNS: ${names}, gone from ${hostname}, keep taking requests until another backend is in rotation (at most ${formatDuration(timeoutMs)})`);
    }
  }
}
