/** Request bodies: keeping a small one replayable, streaming a larger one, and cutting one whose client stalls. */

/**
 * Request bodies up to this size are held in memory so a failed attempt can be retried on another backend.
 * Larger ones stream straight through and are sent once (as HAProxy does without http-buffer-request).
 */
export const REPLAY_LIMIT_BYTES = 64 * 1024;

export type OutgoingBody =
  | { replayable: true; body: Uint8Array | null }
  | { replayable: false; body: ReadableStream<Uint8Array>; /** The length the client declared, if it did. */ length?: number };

/** The body of a request that has none. */
export const NO_BODY: OutgoingBody = { replayable: true, body: null };

/**
 * Reads up to `limit` bytes of the request body. If it ends by then, it is kept whole and can be sent again;
 * otherwise what was read is put back in front of the rest and the body streams through once.
 */
export async function prepareBody(request: Request, limit = REPLAY_LIMIT_BYTES): Promise<OutgoingBody> {
  if (request.body === null) return NO_BODY;
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit) return { replayable: false, body: request.body, length: declared };
  const read = await readAhead(request.body, limit);
  if (read instanceof Uint8Array) return { replayable: true, body: read };
  return { replayable: false, body: rejoin(read) };
}

/**
 * Passes a streamed request body through, erroring it when the client sends nothing for `idleMs`: a client that
 * trickles (or stops) its body would otherwise hold an upstream connection until --timeout.
 */
export function failWhenIdle(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  onIdle: () => void,
  /** Told each piece's size as it passes (the access log's bytes_in). */
  onPiece: (bytes: number) => void = () => {},
): ReadableStream<Uint8Array> {
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
          else {
            onPiece(read.value.byteLength);
            controller.enqueue(read.value);
          }
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

/**
 * Bytes as a body Bun sends with a Content-Length but without a Content-Type: given bytes, Bun adds
 * `application/octet-stream`, which would make a browser download an answer its backend left untyped for sniffing.
 */
export function untypedBody(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

type BodyReader = Pick<ReadableStreamDefaultReader<Uint8Array>, "read" | "cancel">;

/** A body that was read in part: the chunks read so far, then the rest. */
interface ReadInPart {
  head: Uint8Array[];
  rest: BodyReader;
}

/** Reads up to `limit` bytes: the whole body if it ends by then, else what was read and the rest. */
async function readAhead(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | ReadInPart> {
  // (bun-types and lib.dom disagree on the reader's result type; this is the one interface both satisfy at runtime.)
  const reader = body.getReader() as unknown as BodyReader;
  const head: Uint8Array[] = [];
  let size = 0;
  while (size <= limit) {
    const next = await reader.read();
    if (next.done) return head.length === 1 ? head[0]! : Buffer.concat(head, size);
    head.push(next.value);
    size += next.value.byteLength;
  }
  return { head, rest: reader };
}

/** A body read in part, whole again: the chunks read first, then the rest; errors and a cancel pass through. */
function rejoin({ head, rest }: ReadInPart): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = head.length ? { done: false as const, value: head.shift()! } : await rest.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          controller.error(error);
        }
      },
      cancel: (reason) => rest.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
