/**
 * A worker process's watchdog, run on a thread of its own (worker.ts starts it as a Worker), so that it runs while
 * the process's main thread is stuck (a hook in an endless loop) and no JavaScript of it can. When the primary is
 * gone (this process has another parent now) and the main thread has not ticked for a while, it kills the process:
 * a stuck worker must not outlive its primary and keep the port. A main thread that still ticks is left alone: it
 * drains and exits by itself when the IPC channel closes.
 *
 * An entrypoint of its own in build.ts: the compiled binary embeds it, as the Worker needs a module to run.
 */

/** What the main thread posts: first the primary's pid and the silence that counts as stuck; then ticks. */
export type ToWatchdog = { primaryPid: number; stuckAfterMs: number } | "tick";

/** How often the parent is looked at; the primary's death is acted on within about this. */
const LOOK_EVERY_MS = 100;

declare const self: Worker;
let watched: { primaryPid: number; stuckAfterMs: number } | null = null;
let tickedAt = performance.now();
self.onmessage = ({ data }: MessageEvent<ToWatchdog>) => {
  if (data !== "tick") watched = data;
  tickedAt = performance.now();
};
setInterval(() => {
  if (!watched) return;
  // process.ppid asks the kernel each time: after the primary's death this process belongs to another parent.
  const orphaned = process.ppid !== watched.primaryPid;
  if (orphaned && performance.now() - tickedAt >= watched.stuckAfterMs) process.kill(process.pid, "SIGKILL");
}, LOOK_EVERY_MS);
