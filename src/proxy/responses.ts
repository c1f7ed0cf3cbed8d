/** lb's own answers when no backend can give one: short plain text, never an HTML error page. */

const REASONS: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
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
