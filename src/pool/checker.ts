/** The active health check loop: the one place that probes backends. Results go to the pool's state machine. */
import { classifyFailure } from "../upstream-error.ts";
import { VERSION } from "../version.ts";
import type { Backend } from "./backend.ts";
import type { Observation } from "./health.ts";
import type { Pool } from "./pool.ts";

export interface CheckSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
}

const HEADERS = { "user-agent": `lb-health-check/${VERSION}`, accept: "*/*" };

/** One check: `GET <backend><path>`; 200 within the timeout passes, anything else fails, with the reason. */
export async function checkBackend(backend: Backend, settings: CheckSettings): Promise<Observation> {
  try {
    const response = await fetch(backend.url + settings.path, {
      headers: HEADERS,
      redirect: "manual",
      decompress: false,
      signal: AbortSignal.timeout(settings.timeoutMs),
    });
    // Read the (small) body so the connection can be reused by the next check.
    await response.arrayBuffer();
    return response.status === 200 ? { ok: true, reason: "status 200" } : { ok: false, reason: `status ${response.status}` };
  } catch (error) {
    const failure = classifyFailure(error);
    const reason = failure.kind === "timeout" ? `no answer within ${settings.timeoutMs}ms` : failure.reason;
    return { ok: false, reason };
  }
}

/** Checks every backend concurrently, one round per interval; rounds never overlap. */
export class HealthChecker {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(
    private readonly pool: Pool,
    private readonly settings: CheckSettings,
  ) {}

  async runRound(): Promise<void> {
    await Promise.all(
      this.pool.backends.map(async (backend) => this.pool.recordCheck(backend, await checkBackend(backend, this.settings))),
    );
  }

  /** Runs the first round now (so the first request already avoids dead backends), then keeps going. */
  async start(): Promise<void> {
    await this.runRound();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      await this.runRound();
      this.#schedule();
    }, this.settings.intervalMs);
  }
}
