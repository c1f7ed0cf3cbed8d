/** How a change in the pool reads: a line in lb's log, a few words on the dashboard. */
import { formatDuration } from "../config/duration.ts";
import type { Logger } from "../log/log.ts";
import { type Backend, describeState, isAvailable } from "./backend.ts";
import type { PoolEvent, Pool } from "./pool.ts";

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
 * actions are logged where they are made, with who made them. `upBefore`: the backend has been up before, so it comes
 * "back up" and "went down" (one that was never up "is up", or "is down").
 */
export function logPoolEvent(log: Logger, event: PoolEvent, pool: Pool, upBefore = false): void {
  const { backend } = event;
  const fields = (reason?: string) => ({ event: event.type, backend: backend.name, state: describeState(backend), ...(reason ? { reason } : {}) });
  switch (event.type) {
    case "health":
      if (event.to.status === "healthy") {
        log.info(`backend ${backend.name} is ${upBefore ? "back up" : "up"} (${event.to.reason})`, fields(event.to.reason));
      } else {
        log.warn(`backend ${backend.name} ${upBefore ? "went down" : "is down"}: ${event.to.reason}`, fields(event.to.reason));
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
    const none = noneAvailable(pool);
    const where = this.poolName ? ` in pool ${this.poolName}` : "";
    if (none && !this.#raised) log.error(`no healthy backends${where}: answering 503 for it until one recovers`);
    this.#raised = none;
  }

  /** Takes the pool's state as already said (by the first round's summary), without a line of its own. */
  settle(pool: Pool): void {
    this.#raised = noneAvailable(pool);
  }
}

function noneAvailable(pool: Pool): boolean {
  return pool.backends.length > 0 && pool.available().length === 0;
}

/**
 * A pool's lines in lb's log: each change as logPoolEvent words it, and the no-backend alarm. The first health round
 * is one summary line (firstRoundDone), not a line per backend and an alarm; a backend's first passing check says it
 * "is up", only a return "back up".
 */
export class PoolLog {
  #firstRound = true;
  readonly #upBefore = new WeakSet<Backend>();
  readonly #alarm: NoBackendAlarm;

  /** `poolName` is said when lb has several pools ("" when it has one). */
  constructor(
    private readonly log: Logger,
    private readonly pool: Pool,
    private readonly poolName: string,
  ) {
    this.#alarm = new NoBackendAlarm(poolName);
  }

  event(event: PoolEvent): void {
    const upBefore = this.#upBefore.has(event.backend);
    if (event.type === "health" && event.to.status === "healthy") this.#upBefore.add(event.backend);
    if (this.#firstRound && event.type === "health") return; // firstRoundDone() says it
    logPoolEvent(this.log, event, this.pool, upBefore);
    if (!this.#firstRound) this.#alarm.check(this.pool, this.log);
  }

  /** The first round's result in one line: how many are healthy, and which are down and why. */
  firstRoundDone(): void {
    this.#firstRound = false;
    this.#alarm.settle(this.pool);
    const { backends } = this.pool;
    const where = this.poolName ? `pool ${this.poolName}: ` : "";
    if (backends.length === 0) return void this.log.warn(`${where}no backends yet`);
    const down = backends.filter((backend) => !isAvailable(backend));
    const healthy = `${where}${backends.length - down.length} of ${plural(backends.length, "backend")} healthy`;
    if (down.length === 0) return void this.log.info(healthy);
    const reasons = down.map((backend) => `${backend.name} (${backend.health.reason})`).join(", ");
    this.log.warn(`${healthy}; down: ${reasons}${down.length === backends.length ? "; answering 503 until one comes up" : ""}`);
  }
}
