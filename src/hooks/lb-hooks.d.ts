/**
 * The types of an lb hooks file (`lb --hooks ./lb.hooks.ts`). `lb types > lb-hooks.d.ts` writes this file; put it
 * beside your hooks file and import from it, so your editor checks the file:
 *
 *   import type { HookContext } from "./lb-hooks";
 *   export function onRequest(ctx: HookContext) {
 *     if (ctx.request.headers.get("x-canary") === "1") ctx.pool = "canary";
 *   }
 *
 * A hooks file exports onRequest, onResponse or both, and nothing else. lb calls them on every request, so keep
 * them quick: a hook that throws, or takes longer than --hooks-timeout, gets the client an error from lb (500 from
 * onRequest, 502 from onResponse) and a log line. A synchronous hook cannot be interrupted: an endless loop stops
 * lb's process (with --workers, that worker, which the primary replaces).
 * lb loads the file again when it changes; a broken file is refused with its error and the last good hooks stay.
 */

/** One request on its way through lb. The same object is passed to onRequest and onResponse. */
export interface HookContext {
  /** The client's request as received: read its method, url and headers. Its body is lb's to forward; do not read it. */
  readonly request: Request;
  /** lb's id of this request, as its access log line shows it. */
  readonly requestId: string;
  /** The client's address: the connection's peer, or with --trusted-proxies the one its X-Forwarded-For names. */
  readonly clientIp: string;
  /** The pool lb's routes chose (null when none matched). Set it to the name of a configured pool to send the request there. */
  pool: string | null;
  /**
   * null: lb picks a backend of the pool by its policy. Set it to the URL of a backend of the chosen pool (for example
   * "http://10.0.0.5:8080") to try that one first; lb only ever sends to configured backends.
   */
  backend: string | null;
  /** The path and query the backend will get; assign to rewrite it (it must start with "/"). */
  path: string;
  /** The headers the backend will get: a copy of the client's, yours to change. */
  readonly headers: Headers;
}

/** What a hooks file exports: one or both of these functions. */
export interface Hooks {
  /** Called before lb picks a backend. Return a Response to answer the client yourself (no backend is asked). */
  onRequest?(ctx: HookContext): void | Response | Promise<void | Response>;
  /**
   * Called when the backend's answer head has arrived, before the client gets it: change response.headers here
   * (the status and body are the backend's).
   */
  onResponse?(ctx: HookContext, response: Response): void | Promise<void>;
}
