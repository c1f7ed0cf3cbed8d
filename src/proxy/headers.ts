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
 * A request's fields read in one pass (Bun joins repeated ones with ", ", as Headers.get does): all of them, and the
 * few lb decides by: looking each of those up in the Headers instead cost lb 1.5 % more CPU per request.
 */
export interface ScannedFields {
  pairs: Array<[string, string]>;
  host: string | null;
  connection: string | null;
  upgrade: string | null;
  requestId: string | null;
  contentLength: string | null;
  transferEncoding: string | null;
  /** For the access log (its formats show them), read here in the same pass rather than looked up again. */
  userAgent: string | null;
  referer: string | null;
}

export function scanFields(headers: Headers): ScannedFields {
  const scanned: ScannedFields = {
    pairs: [],
    host: null,
    connection: null,
    upgrade: null,
    requestId: null,
    contentLength: null,
    transferEncoding: null,
    userAgent: null,
    referer: null,
  };
  for (const pair of headers) {
    scanned.pairs.push(pair);
    switch (pair[0]) {
      case "host":
        scanned.host = pair[1];
        break;
      case "connection":
        scanned.connection = pair[1];
        break;
      case "upgrade":
        scanned.upgrade = pair[1];
        break;
      case "x-request-id":
        scanned.requestId = pair[1];
        break;
      case "content-length":
        scanned.contentLength = pair[1];
        break;
      case "transfer-encoding":
        scanned.transferEncoding = pair[1];
        break;
      case "user-agent":
        scanned.userAgent = pair[1];
        break;
      case "referer":
        scanned.referer = pair[1];
    }
  }
  return scanned;
}

/**
 * The fields sent to the backend, in the order Bun lists them (by name): every one but hop-by-hop ones and those
 * its Connection header lists (Host excepted), then X-Forwarded-For (the client's appended to, or as
 * --trusted-proxies verified it), X-Forwarded-Proto and -Host from what lb saw, and the request id. One pass, no
 * Headers copy: this runs for every request.
 */
export function upstreamRequestFields(
  incoming: ScannedFields,
  client: ClientInfo,
  requestId: string,
): Array<[string, string]> {
  const { connection } = incoming;
  const listed = connection ? connectionListed(connection, NEVER_LISTED) : null;
  const fields: Array<[string, string]> = [];
  let priorFor: string | null = null;
  let host: string | null = null;
  for (const pair of incoming.pairs) {
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

/** Whether the client said it closes its connection after this answer (`Connection: close`), by that field. */
export function closesAfter(connection: string | null): boolean {
  return connection !== null && connectionListed(connection).has("close");
}
