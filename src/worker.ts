/**
 * `--workers N`: a worker process's main (main.ts hands over to it; the primary's side is cluster/workers.ts). It
 * serves traffic on the shared port with the pool its primary describes, tells the primary when a backend refuses a
 * connection, and reports its counts every half second. It has no health checks, DNS, admin API or signal handling of
 * its own: the primary decides, and stopping is the primary's call (or its death's).
 */
import { createLogger } from "./log.ts";
import type { RunningLb } from "./server.ts";
import { createAccessLog, startLb } from "./server.ts";
import { type ToPrimary, type ToWorker, backendLoad, snapshotMetrics } from "./cluster/sync.ts";

const REPORT_EVERY_MS = 500;

export function runWorker(id: string): void {
  const send = (message: ToPrimary) => process.send?.(message);
  /** Sends, then exits: exiting at once would lose what is still queued on the IPC channel (access lines). */
  const sendAndExit = (message: ToPrimary, code: number) => {
    if (!process.connected) process.exit(code);
    process.send!(message, undefined, undefined, () => process.exit(code));
  };
  let lb: RunningLb | null = null;
  let log = createLogger("info", "pretty", `worker ${id}: `);
  /** A state that came while lb was still starting, applied once it runs. */
  let early: (ToWorker & { type: "state" }) | null = null;
  let stopping: Promise<void> | null = null;
  const report = (running: RunningLb): ToPrimary => ({
    type: "report",
    report: { queued: running.queued(), load: backendLoad(running.pool.backends), metrics: snapshotMetrics(running.metrics, Date.now()) },
  });
  const stop = () =>
    (stopping ??= (async () => {
      if (!lb) process.exit(0);
      await lb.stop();
      sendAndExit(report(lb), 0);
    })());

  const start = async (message: ToWorker & { type: "start" }) => {
    log = createLogger(message.config.logLevel, message.config.logFormat, `worker ${id}: `);
    try {
      const accessLog = createAccessLog(message.config, log, { write: (lines) => send({ type: "access", lines }), flush() {} });
      lb = await startLb(message.config, { log, accessLog, primary: { send, state: message.state } });
    } catch (error) {
      const { message: text, code } = error as Error & { code?: string };
      return sendAndExit({ type: "failed", message: text, code }, 1);
    }
    const running = lb;
    if (early) running.adoptPoolState(early.state);
    setInterval(() => send(report(running)), REPORT_EVERY_MS).unref();
    send({ type: "ready" });
  };

  const handle = (message: ToWorker) => {
    switch (message.type) {
      case "start":
        return void start(message);
      case "state":
        if (!lb) early = message;
        return lb?.adoptPoolState(message.state);
      case "reload":
        return lb?.reload(message.config);
      case "reopen-logs":
        return lb?.reopenLogs();
      case "stop":
        return void stop();
    }
  };
  process.on("message", (message: ToWorker) => {
    try {
      handle(message);
    } catch (error) {
      log.error(`${message.type} failed: ${(error as Error).message}`);
    }
  });
  process.on("unhandledRejection", (reason) => log.error(`unhandled error: ${(reason as Error)?.message ?? reason}`));
  // Ctrl-C reaches the whole process group: the primary orders the stop, so that it is one drain, not two.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => void stop());
  // The primary is gone (killed, crashed): finish what is in flight and leave, rather than serve an unwatched pool.
  process.on("disconnect", () => void stop());
}
