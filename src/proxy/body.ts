/** Request and response bodies: keeping a small request body replayable, and watching a response body end. */

/**
 * Request bodies up to this size are held in memory so a failed attempt can be retried on another backend.
 * Larger ones stream straight through and are sent once (as HAProxy does without http-buffer-request).
 */
export const REPLAY_LIMIT_BYTES = 64 * 1024;

export type OutgoingBody =
  | { replayable: true; body: Uint8Array | null }
  | { replayable: false; body: ReadableStream<Uint8Array> };

/**
 * Reads up to `limit` bytes of the request body. If it ends by then, it is kept whole and can be sent again;
 * otherwise what was read is put back in front of the rest and the body streams through once.
 */
export async function prepareBody(request: Request, limit = REPLAY_LIMIT_BYTES): Promise<OutgoingBody> {
  if (request.body === null) return { replayable: true, body: null };
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) return { replayable: false, body: request.body };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size <= limit) {
    const { done, value } = await reader.read();
    if (done) return { replayable: true, body: concat(chunks, size) };
    chunks.push(value);
    size += value.byteLength;
  }
  return { replayable: false, body: prepend(chunks, reader) };
}

/**
 * Passes a streamed request body through, erroring it when the client sends nothing for `idleMs`: a client that
 * trickles (or stops) its body would otherwise hold an upstream connection until --timeout.
 */
export function failWhenIdle(body: ReadableStream<Uint8Array>, idleMs: number, onIdle: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer: Timer | undefined;
        const idle = new Promise<"idle">((resolve) => {
          timer = setTimeout(() => resolve("idle"), idleMs);
        });
        try {
          const read = await Promise.race([reader.read(), idle]);
          if (read === "idle") {
            const error = new Error("the client stopped sending its body");
            onIdle();
            controller.error(error);
            reader.cancel(error).catch(() => {});
          } else if (read.done) controller.close();
          else controller.enqueue(read.value);
        } catch (error) {
          controller.error(error);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function prepend(head: Uint8Array[], rest: Pick<ReadableStreamDefaultReader<Uint8Array>, "read" | "cancel">): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = head.shift();
      if (chunk) return controller.enqueue(chunk);
      const { done, value } = await rest.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => rest.cancel(reason),
  });
}

/**
 * Passes a response body through unchanged, counting bytes, and calls `onEnd` once when it is finished: fully sent,
 * cancelled by a client that went away, or failed on the backend's side (then with the error). That is when the
 * upstream connection is free again.
 */
export function watchBody(
  body: ReadableStream<Uint8Array>,
  onEnd: (bytes: number, backendError?: unknown) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let bytes = 0;
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    onEnd(bytes, error);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            end();
            controller.close();
            return;
          }
          bytes += value.byteLength;
          controller.enqueue(value);
        } catch (error) {
          end(error);
          controller.error(error);
        }
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
