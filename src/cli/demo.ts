/** `lb demo`: three backends in this process, lb in front, and a way to stop and start them from the keyboard. */
import type { Server } from "bun";
import type { Logger } from "../log/log.ts";

export interface DemoBackend {
  readonly number: number;
  port: number;
  server: Server<undefined> | null;
}

function serveDemoBackend(number: number, port: number): Server<undefined> {
  return Bun.serve({
    port,
    hostname: "127.0.0.1",
    development: false,
    // The port it got, not the one asked for (0: any free one).
    fetch: (request, server) =>
      new Response(`Hello from demo backend ${number} (port ${server.port}): ${request.method} ${new URL(request.url).pathname}\n`),
  });
}

/** Starts three backends on free loopback ports. */
export function startDemoBackends(): DemoBackend[] {
  return [1, 2, 3].map((number) => {
    const server = serveDemoBackend(number, 0);
    return { number, port: server.port!, server };
  });
}

/** Stops a running backend (its port then refuses connections) or starts it again on the same port. */
export async function toggleDemoBackend(backend: DemoBackend, log: Logger): Promise<void> {
  if (backend.server) {
    await backend.server.stop(true);
    backend.server = null;
    log.info(`demo backend ${backend.number} (port ${backend.port}) stopped: lb will route around it`);
  } else {
    backend.server = serveDemoBackend(backend.number, backend.port);
    log.info(`demo backend ${backend.number} (port ${backend.port}) started: lb takes it back after its next health check`);
  }
}

export function demoInstructions(lbUrl: string, adminUrl: string | null, backends: DemoBackend[]): string {
  const localhost = (url: string) => url.replace("://0.0.0.0", "://localhost").replace("://127.0.0.1", "://localhost");
  const local = localhost(lbUrl);
  return [
    "",
    `lb demo: three backends (ports ${backends.map((b) => b.port).join(", ")}) behind lb at ${local}`,
    ...(adminUrl ? [`the dashboard: ${localhost(adminUrl)}/`] : []),
    "",
    `  curl ${local}/                                  one request`,
    `  for i in 1 2 3 4 5 6; do curl -s ${local}/; done    watch round robin`,
    "",
    "Type 1, 2 or 3 and Enter to stop (or restart) that backend and watch lb fail over; Ctrl-C quits.",
    "",
  ].join("\n");
}

/** Reads backend numbers from stdin and toggles them; other input is ignored with a hint. */
export async function readDemoCommands(backends: DemoBackend[], log: Logger): Promise<void> {
  for await (const line of console) {
    const backend = backends.find((b) => String(b.number) === line.trim());
    if (backend) await toggleDemoBackend(backend, log);
    else if (line.trim() !== "") log.info("type 1, 2 or 3 and Enter to stop or start a demo backend");
  }
}
