/** The admin listener: a second Bun.serve, loopback by default, serving the admin API. */
import type { Server } from "bun";
import type { AdminAddress } from "../config/types.ts";
import type { Logger } from "../log/log.ts";
import type { AdminHandler } from "./api.ts";

export function startAdminServer(address: NonNullable<AdminAddress>, handler: AdminHandler, log: Logger): Server<undefined> {
  return Bun.serve({
    hostname: address.host,
    port: address.port,
    development: false,
    reusePort: false,
    // The admin API takes small JSON bodies only.
    maxRequestBodySize: 64 * 1024,
    fetch: (request, server) => handler(request, server.requestIP(request)?.address ?? "-", () => server.timeout(request, 0)),
    error(error) {
      log.error(`admin API error: ${error.message}`);
      return Response.json({ error: "internal error in the admin API" }, { status: 500 });
    },
  });
}
