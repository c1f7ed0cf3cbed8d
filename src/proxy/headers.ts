/** The request fields a backend gets: the client's own minus hop-by-hop ones, plus what lb says about the client. */
import type { ClientAddress } from "../edge/client-address.ts";
import { HOP_BY_HOP, connectionListed } from "../http/hop-by-hop.ts";

/** The client as lb tells the backend: its address (edge/client-address.ts decides it) and the scheme it used. */
export interface ClientInfo extends ClientAddress {
  /** The scheme the client used to reach lb. */
  proto: "http" | "https";
}

/** Fields lb sets itself from what it saw; the client's values of them are replaced (X-Forwarded-For appended to). */
const SET_BY_LB = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]);
/** A client's Connection header may not remove these: the backend builds URLs from Host. */
const NEVER_LISTED = new Set(["host"]);

/**
 * The fields sent to the backend, in the client's order: every one but hop-by-hop ones and those its Connection header
 * lists (Host excepted), then X-Forwarded-For (the client's appended to, or as --trusted-proxies verified it), X-Forwarded-Proto and -Host from what lb saw,
 * and the request id. One pass, no Headers copy: this runs for every request.
 */
export function upstreamRequestFields(incoming: Headers, client: ClientInfo, requestId: string): Array<[string, string]> {
  const connection = incoming.get("connection");
  const listed = connection ? connectionListed(connection, NEVER_LISTED) : null;
  const fields: Array<[string, string]> = [];
  let priorFor: string | null = null;
  let host: string | null = null;
  for (const pair of incoming) {
    const name = pair[0];
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    if (SET_BY_LB.has(name)) {
      if (name === "x-forwarded-for") priorFor = pair[1];
      continue;
    }
    if (name === "host") host = pair[1];
    // lb reads Forwarded's for= from a trusted proxy; from anyone else it is a spoof a backend might believe.
    else if (name === "forwarded" && client.untrusted) continue;
    fields.push(pair);
  }
  const forwardedFor = client.forwardedFor ?? (priorFor ? `${priorFor}, ${client.ip}` : client.ip);
  fields.push(["x-forwarded-for", forwardedFor], ["x-forwarded-proto", client.proto]);
  if (host) fields.push(["x-forwarded-host", host]);
  fields.push(["x-request-id", requestId]);
  return fields;
}

/** Whether the client said it closes its connection after this answer (`Connection: close`). */
export function closesAfter(request: Request): boolean {
  const connection = request.headers.get("connection");
  return connection !== null && connectionListed(connection).has("close");
}
