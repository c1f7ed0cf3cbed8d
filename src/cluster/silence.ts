/**
 * Which workers have stopped answering their primary. A worker reports every half second (worker.ts), so a long
 * silence means its main thread is stuck (a hook in an endless loop): it serves nobody, yet the kernel still hands it
 * its share of new connections. Such a worker is reported stuck (the primary's /readyz says so), and past a longer
 * silence killed and replaced (cluster/workers.ts). Pure: the times are given, so tests need no timers.
 */

export interface SilenceLimits {
  /** Silence after which a worker is reported stuck. */
  stuckAfterMs: number;
  /** Silence after which it is killed: longer, so a passing stall (a long GC, a slow synchronous hook) survives. */
  killAfterMs: number;
  /** How often the primary looks. */
  lookEveryMs: number;
}

/** Four missed reports (one every 500 ms) to be called stuck, ten to be killed. */
export const WORKER_SILENCE: SilenceLimits = { stuckAfterMs: 2000, killAfterMs: 5000, lookEveryMs: 250 };

export interface SilenceNews {
  id: number;
  silentMs: number;
  verdict: "stuck" | "kill";
}

export class SilenceWatch {
  /** When each watched worker was last heard from. */
  readonly #heardAt = new Map<number, number>();
  readonly #stuck = new Set<number>();
  #lookedAt: number | null = null;

  constructor(private readonly limits: SilenceLimits) {}

  /** Worker `id` said something at `now` (and is watched from now on); returns how long it was stuck, or null if it was not. */
  heard(id: number, now: number): number | null {
    const wasStuck = this.#stuck.delete(id) ? now - this.#heardAt.get(id)! : null;
    this.#heardAt.set(id, now);
    return wasStuck;
  }

  /** Worker `id`'s process is gone: it is neither watched nor stuck until a new one is heard from. */
  forget(id: number): void {
    this.#heardAt.delete(id);
    this.#stuck.delete(id);
  }

  /** The workers reported stuck, still running. */
  stuck(): number[] {
    return [...this.#stuck].sort((a, b) => a - b);
  }

  /** Looks at every watched worker at `now`: those newly stuck, and those to kill (no longer watched after that). */
  look(now: number): SilenceNews[] {
    // A look that comes late means the primary itself was stalled and read nobody's messages: not their silence.
    const stalled = this.#lookedAt === null ? 0 : Math.max(0, now - this.#lookedAt - this.limits.lookEveryMs);
    this.#lookedAt = now;
    const news: SilenceNews[] = [];
    for (const [id, heardAt] of this.#heardAt) {
      const since = heardAt + stalled;
      this.#heardAt.set(id, since);
      const silentMs = now - since;
      if (silentMs >= this.limits.killAfterMs) {
        this.#heardAt.delete(id); // stays stuck until its process is gone (forget)
        this.#stuck.add(id);
        news.push({ id, silentMs, verdict: "kill" });
      } else if (silentMs >= this.limits.stuckAfterMs && !this.#stuck.has(id)) {
        this.#stuck.add(id);
        news.push({ id, silentMs, verdict: "stuck" });
      }
    }
    return news;
  }
}
