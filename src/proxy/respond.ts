/** The client's response from a backend's answer: its fields, lb's request id, a sticky cookie when one is due. */
import type { UpstreamAnswer } from "../upstream/client.ts";
import { untypedBody } from "./body.ts";

/**
 * The Response for the client, and the body's size when it goes whole (null when it streams). The fields arrive
 * without hop-by-hop ones; lb's request id replaces any the backend sent.
 */
export function clientResponse(answer: UpstreamAnswer, requestId: string, stickyCookie: string | null): { response: Response; wholeBytes: number | null } {
  const { headers, body } = answer;
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
  const init = { status: answer.status, statusText: answer.statusText, headers };
  if (body instanceof ReadableStream) return { response: new Response(body, init), wholeBytes: null };
  // Bun adds application/octet-stream to a body given as bytes: one the backend left untyped goes as a stream.
  const response = new Response(body?.byteLength && !typed ? untypedBody(body) : body, init);
  return { response, wholeBytes: body?.byteLength ?? 0 };
}
