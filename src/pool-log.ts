/** How a change in the pool reads: a line in lb's log, a few words on the dashboard. */
import { formatDuration } from "./config/duration.ts";
import type { Logger } from "./log.ts";
import { describeState } from "./pool/backend.ts";
import type { PoolEvent, Pool } from "./pool/pool.ts";

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** A pool event in a few words, for the dashboard's log. */
export function describeEvent(event: PoolEvent): string {
  switch (event.type) {
    case "health":
      return event.to.status === "healthy" ? `up (${event.to.reason})` : `down: ${event.to.reason}`;
    case "ejected":
      return `ejected for ${formatDuration(event.forMs)} after repeated errors`;
    case "ejection-refused":
      return "failing, but kept in rotation (ejection limit)";
    case "returned":
      return "back from ejection";
    case "admin":
      return event.state === "active" ? "enabled" : event.state;
    case "weight":
      return `weight ${event.weight}`;
    case "added":
      return "added";
    case "removed":
      return "removed";
  }
}

/**
 * The event's line, with fields JSON logs carry for alerts to match (`event`, `backend`, `state`, `reason`); admin
 * actions are logged where they are made, with who made them.
 */
export function logPoolEvent(log: Logger, event: PoolEvent, pool: Pool): void {
  const { backend } = event;
  const fields = (reason?: string) => ({ event: event.type, backend: backend.name, state: describeState(backend), ...(reason ? { reason } : {}) });
  switch (event.type) {
    case "health":
      if (event.to.status === "healthy") {
        log.info(`backend ${backend.name} is ${event.from.status === "unknown" ? "up" : "back up"} (${event.to.reason})`, fields(event.to.reason));
      } else {
        log.warn(`backend ${backend.name} ${event.from.status === "unknown" ? "is down" : "went down"}: ${event.to.reason}`, fields(event.to.reason));
      }
      break;
    case "added":
    case "removed":
      log.info(`backend ${backend.url} ${event.type} (${plural(pool.backends.length, "backend")} in the pool)`, fields());
      break;
    case "ejected":
      log.warn(`backend ${backend.name} ejected for ${formatDuration(event.forMs)}: too many 5xx or gateway errors in a row`, fields("errors in a row"));
      break;
    case "ejection-refused":
      log.warn(`backend ${backend.name} keeps failing but stays in rotation: ejecting it would pass the outlier-max-ejected share`, fields("ejection limit"));
      break;
    case "returned":
      log.info(`backend ${backend.name} is back in rotation after its ejection`, fields());
      break;
  }
}

/** Says once that no backend is left in rotation (not once per backend found down), and again after one came back. */
export class NoBackendAlarm {
  #raised = false;

  /** `poolName` is said when lb has several pools. */
  constructor(private readonly poolName = "") {}

  check(pool: Pool, log: Logger): void {
    const none = pool.backends.length > 0 && pool.available().length === 0;
    const where = this.poolName ? ` in pool ${this.poolName}` : "";
    if (none && !this.#raised) log.error(`no healthy backends${where}: answering 503 for it until one recovers`);
    this.#raised = none;
  }
}
