#!/usr/bin/env bun
/** lb's entry point: a worker process (--workers) runs its side; anything else is the command line (commands.ts). */
import { WORKER_ENV } from "./cluster/workers.ts";
import { describeError, runCli } from "./cli/commands.ts";
import { runWorker } from "./cluster/worker.ts";

const workerId = process.env[WORKER_ENV];
if (workerId) runWorker(workerId);
else {
  runCli(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`lb: ${describeError(error)}\n`);
    process.exit(1);
  });
}
