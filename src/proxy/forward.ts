/**
 * One request's trip, top to bottom: admit it, pick candidates, send it through the upstream client, retry the next
 * candidate when that is safe, and hand the answer back. The pieces it uses each live in a file of their own: an
 * attempt's in-flight count (attempt.ts), the client's response (responses.ts), the WebSocket trip (websocket-trip.ts),
 * when a failure may go elsewhere (retry.ts), the settings (forwarder-options.ts) and the access line and metrics of a
 * finished request (trip-log.ts).
 */
import { preferFirst } from "../balance/policy.ts";
import { formatDuration } from "../config/duration.ts";
import { ThrottledLine } from "../log/log.ts";
import { type Backend, isAvailable } from "../pool/backend.ts";
import type { UpstreamCall, UpstreamResponse } from "../upstream/client.ts";
import { isFailure } from "../upstream/client.ts";
import { type Failure, failure } from "../upstream/failure.ts";
import { Attempt, type AttemptBooks } from "./attempt.ts";
import { failWhenIdle, NO_BODY, type OutgoingBody, prepareBody } from "./body.ts";
import { compressAnswer } from "./compressor.ts";
import { closesAfter } from "./headers.ts";
import { clientResponse, errorResponse } from "./responses.ts";
import { ResetBursts, mayRetry, retryBudgetAllows } from "./retry.ts";
import { type Trip, logRequest, placeholderValues, requestFields } from "./trip.ts";
import { TripLog } from "./trip-log.ts";
import { QueueFull, Waitlist } from "./waitlist.ts";
import { isWebSocketUpgrade } from "./websocket.ts";
import { openTunnel } from "./websocket-trip.ts";
import type { ForwarderOptions, ForwarderTuning } from "./forwarder-options.ts";

type Fields = Array<[string, string]>;

const UNRESPONSIVE = failure("reset", "backend stopped answering");
/** At most one "out of file descriptors" warning this often. */
const DESCRIPTOR_WARNING_EVERY_MS = 10_000;

/** How an attempt can end because of the client: it left, or stopped sending its body. */
type ClientEnd = "client-gone" | "client-stalled";
/** The backend answered with `status`, but the onResponse hook failed: the client gets lb's 502 instead. */
class ResponseHookFailed {
  constructor(readonly status: number) {}
}

type AttemptResult = Response | Failure | ClientEnd | ResponseHookFailed;

export class Forwarder {
  /** Woken whenever a backend finishes a request, for requests waiting for one with room. */
  readonly #roomQueue: Waitlist;
  #requestsInFlight = 0;
  #retriesInFlight = 0;
  /** The latest reset from each backend and how many came close together before it. */
  readonly #resetBursts = new ResetBursts();

  readonly #tripLog: TripLog;
  readonly #books: AttemptBooks = { attemptOver: (attempt, status, bytes, failure) => this.#attemptOver(attempt, status, bytes, failure) };
  readonly #descriptorWarning = new ThrottledLine(DESCRIPTOR_WARNING_EVERY_MS);

  constructor(private options: ForwarderOptions) {
    this.#roomQueue = new Waitlist(options.queueSize);
    this.#tripLog = new TripLog(options.metrics, options.accessLog);
  }

  /** New tuning applies to requests that start from now on. */
  reconfigure(tuning: ForwarderTuning): void {
    this.options = { ...this.options, ...tuning };
    this.#roomQueue.maxSize = tuning.queueSize;
  }

  /** Requests waiting for a backend with room. */
  get queued(): number {
    return this.#roomQueue.size;
  }

  /** Requests this forwarder has taken and not yet answered (reading a body, queued, or waiting on a backend). */
  get unanswered(): number {
    return this.#requestsInFlight;
  }

  /**
   * Resolves to the response, or to undefined when the request became a WebSocket tunnel. The trip comes from the
   * front (data-plane.ts), with what a route or a hook decided for it.
   */
  handle(trip: Trip): Promise<Response | undefined> {
    if (this.options.debug) logRequest(this.options.log, trip);
    if (this.options.pool.available().length === 0) return Promise.resolve(this.#noBackend(trip));
    if (isWebSocketUpgrade(trip.fields.upgrade)) return this.#tunnel(trip);
    return this.#forward(trip);
  }

  async #tunnel(trip: Trip): Promise<Response | undefined> {
    const tunnel = await openTunnel(trip, this.#candidates(trip) ?? [], {
      metrics: this.options.metrics,
      log: this.options.log,
      retries: this.options.retries,
      timeoutMs: this.options.timeoutMs,
      sendProxy: this.options.sendProxy,
      attempt: (trip, backend) => this.#startAttempt(trip, backend),
    });
    return tunnel.upgraded ? undefined : this.#fail(trip, tunnel.status, tunnel.detail);
  }

  /**
   * The backend went down because its checks get no answer (frozen, or its host gone): requests still waiting on it
   * would only meet --timeout. Those safe to send again (idempotent, body kept, nothing received yet) go to another
   * backend now; the others wait on, as the backend may yet answer them.
   */
  backendUnresponsive(backend: Backend): void {
    this.options.upstream.callOff(backend.url, UNRESPONSIVE);
  }

  /** Wakes everyone waiting for room: the pool changed (a backend came back, was added, or left its ejection). */
  wakeWaitingRequests(): void {
    while (this.#roomQueue.wakeOne());
  }

  /**
   * The policy's order for this request (a sticky backend first); null when no backend is available. Called after
   * any wait, so the choice sees the pool as it is when the request is sent, not as it was on arrival.
   */
  #candidates(trip: Trip): readonly Backend[] | null {
    const available = this.options.pool.available();
    if (available.length === 0) return null;
    const ordered = this.options.policy.candidates(available, trip);
    if (trip.preferred) return preferFirst(trip.preferred, ordered);
    const { sticky } = this.options;
    if (!sticky) return ordered;
    trip.pinned = sticky.pinned(available, trip.headers);
    return sticky.prefer(trip.pinned, ordered);
  }

  async #forward(trip: Trip): Promise<Response> {
    this.#requestsInFlight++;
    try {
      const { request } = trip;
      // Read (when small) before the listener is told lb waits on a backend: until then the client's idle timer runs,
      // so a client that never sends its body is closed by it, holding no backend connection meanwhile.
      let body: OutgoingBody;
      try {
        body = request.body === null ? NO_BODY : await prepareBody(request);
      } catch {
        return this.#tripLog.clientGone(trip);
      }
      if (body.replayable) trip.bytesIn = body.body?.byteLength ?? 0;
      else body = this.#watchedUpload(trip, body);
      trip.client.awaitingBackend();
      const headers = requestFields(trip);
      // Set when the request first waits for room (most never do): a clock reading costs a request 0.1–0.2 µs.
      let queueDeadline = 0;
      let lastFailure: Failure | undefined;
      for (;;) {
        const candidates = this.#candidates(trip);
        if (!candidates) break;
        let full = false;
        for (const backend of candidates) {
          if (trip.attempts > this.options.retries) break;
          if (!isAvailable(backend)) continue; // marked down by another request since this one started
          if (!this.#hasRoom(backend)) {
            full = true;
            continue;
          }
          // One attempt: started and ended synchronously around the one await, in this frame (an async function of
          // its own per attempt cost each request its frame, a promise and a resumption more).
          const attempt = this.#attemptStarted(backend, trip, headers, body);
          let result = this.#attemptEnded(attempt, await attempt.call!.result);
          if (result instanceof Promise) result = await result; // only through an asynchronous onResponse hook
          result = this.#attemptCounted(attempt, result);
          if (result instanceof Response) return result;
          if (result instanceof ResponseHookFailed) return this.#fail(trip, 502, "the onResponse hook failed");
          if (result === "client-gone") return this.#tripLog.clientGone(trip);
          if (result === "client-stalled") {
            return this.#fail(trip, 408, `request body stalled for ${formatDuration(this.options.clientTimeoutMs)}`, { connection: "close" });
          }
          lastFailure = result;
          if (result.kind === "local") return this.#outOfDescriptors(trip);
          if (result.kind === "timeout") {
            return this.#fail(trip, 504, `backend did not answer within ${formatDuration(this.options.timeoutMs)}`);
          }
          if (!mayRetry(result.kind, request.method, body.replayable)) break;
          if (!this.#budgetAllows(backend, result)) break;
        }
        // Every usable backend was at its limit before any attempt: queue for room, then choose again.
        if (!full || trip.attempts > 0) break;
        queueDeadline ||= Date.now() + this.options.queueTimeoutMs;
        const waited = await this.#waitForRoom(trip, queueDeadline);
        if (waited) return waited;
      }
      if (!lastFailure) return this.#noBackend(trip);
      return this.#fail(trip, 502, `backend failed (${lastFailure.reason})`);
    } finally {
      this.#requestsInFlight--;
    }
  }

  /** A streamed request body under the client timeout, its bytes counted into the trip. */
  #watchedUpload(trip: Trip, body: OutgoingBody & { replayable: false }): OutgoingBody {
    const streamed = failWhenIdle(body.body, this.options.clientTimeoutMs, () => (trip.bodyStalled = true), (bytes) => (trip.bytesIn += bytes));
    return { ...body, body: streamed };
  }

  /** An attempt sent, with its bookkeeping: stats and the retry budget's count. */
  #attemptStarted(backend: Backend, trip: Trip, headers: Fields, body: OutgoingBody): Attempt {
    const isRetry = trip.attempts > 0;
    trip.attempts++;
    trip.target = backend;
    backend.stats.requests++;
    if (isRetry) {
      backend.stats.retries++;
      this.options.metrics.of(backend.url).retries++;
      this.#retriesInFlight++;
    }
    const attempt = this.#startAttempt(trip, backend);
    attempt.retry = isRetry;
    attempt.call = this.#send(backend, trip, headers, body, attempt);
    return attempt;
  }

  /** The backend's answer, or why there is none, as the trip's result (a promise with an async onResponse hook). */
  #attemptEnded(attempt: Attempt, outcome: UpstreamResponse | Failure): AttemptResult | Promise<AttemptResult> {
    const { backend, trip } = attempt;
    if (isFailure(outcome)) return this.#unanswered(trip, attempt, outcome);
    return this.#answered(backend, trip, attempt, outcome);
  }

  /** An attempt's result counted: retry budget, connect-failure marking, outlier outcomes, latency. */
  #attemptCounted(attempt: Attempt, result: AttemptResult): AttemptResult {
    const { backend, trip } = attempt;
    if (attempt.retry) this.#retriesInFlight--;
    if (result === "client-gone" || result === "client-stalled") return result;
    const { pool } = this.options;
    // The backend answered: judged by its status, even when the onResponse hook then failed (no fault of its own).
    if (result instanceof Response || result instanceof ResponseHookFailed) {
      const failed = result.status >= 500;
      if (failed) backend.stats.errors++;
      this.options.policy.observe?.(backend, trip.upstreamMs);
      pool.recordOutcome(backend, failed);
      return result;
    }
    if (result.kind === "local") {
      this.options.metrics.of(backend.url).descriptorsExhausted++;
      return result; // lb's own condition: the backend did nothing wrong
    }
    backend.stats.errors++;
    if (result.detail) {
      this.options.log.warn(`backend ${backend.name} answered ${trip.request.method} ${trip.path} with a ${result.reason}: ${result.detail}`);
    }
    // A failure counts as a slow answer, so a latency-aware policy moves away from a backend that hangs or errs.
    this.options.policy.observe?.(backend, performance.now() - attempt.sent);
    // Only a refused connection proves a backend down. A reset may be a stale keep-alive socket the backend closed
    // just as it was reused; it is retried (when safe) and counts toward outlier ejection instead.
    if (result.kind === "connect") {
      this.options.metrics.of(backend.url).connectErrors++;
      pool.recordConnectFailure(backend, `${result.reason} (seen forwarding a request)`);
    } else pool.recordOutcome(backend, true);
    return result;
  }

  /**
   * Whether the retry budget lets this failure be tried elsewhere. The budget guards backends from repeats of work
   * they may have done when many fail at once; failing over from a backend that is gone is never held back: a refused
   * connection did no work, and a backend out of rotation, or one resetting several requests at once (a process that
   * died with requests in flight, before anything marked it down), is no retry storm to damp.
   */
  #budgetAllows(backend: Backend, failure: Failure): boolean {
    if (failure.kind === "connect" || !isAvailable(backend)) return true;
    if (failure.kind === "reset" && this.#resetBursts.count(backend, this.options.now?.() ?? performance.now()) > 1) {
      return true;
    }
    return this.#retryBudgetAllows();
  }

  #retryBudgetAllows(): boolean {
    return retryBudgetAllows(this.#requestsInFlight, this.#retriesInFlight, this.options.retryBudgetPercent);
  }

  #hasRoom(backend: Backend): boolean {
    return this.options.maxInflight === 0 || backend.inflight < this.options.maxInflight;
  }

  /** Waits for a backend to have room, until the deadline; a Response (503 or client gone) when it cannot. */
  async #waitForRoom(trip: Trip, deadline: number): Promise<Response | null> {
    const { request } = trip;
    try {
      await this.#roomQueue.wait(request.signal, Math.max(0, deadline - Date.now()));
      return null;
    } catch (error) {
      if (request.signal.aborted) return this.#tripLog.clientGone(trip);
      const full = error instanceof QueueFull;
      this.options.metrics.count("rejected", full ? "queue-full" : "queue-timeout");
      const why = full ? "every backend is at its limit and the queue is full" : "waited too long for a backend with room";
      return this.#fail(trip, 503, why, this.#retryAfter());
    }
  }

  #startAttempt(trip: Trip, backend: Backend): Attempt {
    return new Attempt(backend, trip, this.#books);
  }

  /**
   * An attempt gave its in-flight count back: a request waiting for room may go, and an answered one is logged. An
   * answer cut while under way is counted and logged with its reason; the client sees the body cut off (no last
   * chunk). When the backend broke it off or went silent, it failed all the same and counts toward ejection (nginx:
   * "upstream prematurely closed", "upstream timed out").
   */
  #attemptOver(attempt: Attempt, status: number, bytes: number, failure: Failure | undefined): void {
    if (this.options.maxInflight > 0) this.#roomQueue.wakeOne();
    attempt.span?.end(status, failure?.kind);
    if (status === 0) return;
    const { trip } = attempt;
    if (failure) {
      const { backend } = attempt;
      this.options.metrics.of(backend.url).streamsCut++;
      if (failure.kind !== "cancelled") this.options.pool.recordOutcome(backend, true);
      this.options.log.warn(
        `the answer from ${backend.name} to ${trip.request.method} ${trip.path} was cut after ${bytes} bytes: ${failure.reason}`,
      );
    }
    this.#tripLog.finish(trip, status, bytes);
  }

  #send(backend: Backend, trip: Trip, headers: Fields, body: OutgoingBody, attempt: Attempt): UpstreamCall {
    const { request, trace } = trip;
    if (trace) attempt.span = trace.attempt(backend.url, trip.upstreamPath, trip.attempts);
    return this.options.upstream.send(backend.url, {
      method: request.method,
      target: trip.upstreamPath,
      headers: trace ? trace.fields(headers, attempt.span!) : headers,
      body: body.body,
      streamLength: body.replayable ? undefined : body.length,
      // A client that said it closes after this answer leaves nothing to keep a backend connection for.
      client: closesAfter(trip.fields.connection) ? null : trip.client.connection,
      from: trip.client,
      timeoutMs: this.options.timeoutMs,
      cancelledBy: request,
      streamWatcher: attempt,
    });
  }

  /** The attempt got no answer: the client's doing (it left, or stalled its body), or the backend's failure. */
  #unanswered(trip: Trip, attempt: Attempt, failure: Failure): AttemptResult {
    attempt.span?.failed(failure.kind);
    attempt.failed();
    if (trip.request.signal.aborted) return "client-gone";
    if (trip.bodyStalled) return "client-stalled";
    return failure.kind === "cancelled" ? "client-gone" : failure;
  }

  /**
   * The backend's answer as the client's Response, put through the onResponse hook when there is one. No closure
   * here (nor in the other per-request methods): a function that makes one allocates its scope on every call.
   */
  #answered(backend: Backend, trip: Trip, attempt: Attempt, answer: UpstreamResponse): AttemptResult | Promise<AttemptResult> {
    trip.upstreamMs = performance.now() - attempt.sent;
    const counts = this.options.metrics.of(backend.url);
    counts.histograms.headers.observe(trip.upstreamMs / 1000);
    const { sticky } = this.options;
    const cookie = sticky && backend !== trip.pinned ? sticky.cookieFor(backend) : null;
    // The backend's body size when it came whole (null when it streams), before any compression.
    const wholeBytes = answer.body instanceof ReadableStream ? null : (answer.body?.byteLength ?? 0);
    const { policy } = trip;
    if (policy) {
      answer.headers = policy.responseFields(answer.headers, placeholderValues(trip));
      if (policy.compression) compressAnswer(answer, trip.request, policy.compression, counts);
    }
    const response = clientResponse(answer, trip.requestId, cookie);
    if (this.options.debug) this.options.log.debug(`Response from server: HTTP/1.1 ${answer.status} ${answer.statusText}`);
    if (!trip.onResponse) return this.#hookDecided(true, response, attempt, answer.status, wholeBytes);
    const passed = trip.onResponse(response);
    if (!(passed instanceof Promise)) return this.#hookDecided(passed, response, attempt, answer.status, wholeBytes);
    return passed.then((ok) => this.#hookDecided(ok, response, attempt, answer.status, wholeBytes));
  }

  /** The answer goes to the client, unless the onResponse hook failed: then lb's 502 does, and the answer is let go. */
  #hookDecided(passed: boolean, response: Response, attempt: Attempt, status: number, wholeBytes: number | null): AttemptResult {
    if (!passed) {
      void response.body?.cancel().catch(() => {}); // frees the backend connection the answer was streaming on
      attempt.failed();
      return new ResponseHookFailed(status);
    }
    attempt.responded(status, wholeBytes);
    return response;
  }

  #fail(trip: Trip, status: number, detail: string, headers?: Record<string, string>): Response {
    const response = errorResponse(status, detail, { ...headers, "x-request-id": trip.requestId });
    this.#tripLog.finish(trip, status, 0);
    return response;
  }

  /**
   * lb has no file descriptor left for a backend connection: a 503 (retrying elsewhere would meet the same wall),
   * no backend blamed, and one warning per interval instead of one per request.
   */
  #outOfDescriptors(trip: Trip): Response {
    this.#descriptorWarning.say(
      (line) => this.options.log.warn(line),
      "out of file descriptors: answering 503 and blaming no backend; each request needs two (client and backend): " +
        "raise the limit (ulimit -n, systemd LimitNOFILE) or lower --max-connections",
    );
    return this.#fail(trip, 503, "lb is out of file descriptors", { "retry-after": "1" });
  }

  #noBackend(trip: Trip): Response {
    this.options.metrics.count("rejected", "no-backend");
    return this.#fail(trip, 503, "no healthy backend", this.#retryAfter());
  }

  #retryAfter(): Record<string, string> {
    return { "retry-after": String(this.options.retryAfterSeconds) };
  }
}

