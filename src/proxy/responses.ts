/**
 * The responses lb gives the client: a backend's, with lb's request id and a sticky cookie when one is due
 * (clientResponse), and lb's own when no backend can give one: short plain text, never an HTML error page
 * (errorResponse).
 */
import type { UpstreamResponse } from "../upstream/client.ts";
import { untypedBody } from "./body.ts";

/**
 * The Response for the client. The fields arrive without hop-by-hop ones; lb's request id replaces any the backend
 * sent.
 */
export function clientResponse(upstream: UpstreamResponse, requestId: string, stickyCookie: string | null): Response {
  const { headers, body } = upstream;
  let typed = false;
  let idAt = -1;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i]![0];
    if (name === "content-type") typed = true;
    else if (name === "x-request-id") idAt = i;
  }
  if (idAt === -1) headers.push(["x-request-id", requestId]);
  else headers[idAt] = ["x-request-id", requestId];
  if (stickyCookie) headers.push(["set-cookie", stickyCookie]);
  const init = { status: upstream.status, statusText: upstream.statusText, headers };
  if (body instanceof ReadableStream) return new Response(body, init);
  // Bun adds application/octet-stream to a body given as bytes: one the backend left untyped goes as a stream.
  return new Response(body?.byteLength && !typed ? untypedBody(body) : body, init);
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export function errorResponse(status: number, detail: string, headers: Record<string, string> = {}): Response {
  return new Response(`${status} ${REASONS[status] ?? "Error"}: ${detail}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}
