/**
 * Sticky sessions by cookie: the first answer sets a cookie naming its backend (by an opaque id, not its address);
 * later requests carrying it go to that backend first while it is available, and move when it is not.
 */
import type { Backend } from "../pool/backend.ts";
import { preferFirst } from "./policy.ts";
import { cookieValue } from "./request-keys.ts";

export class StickySessions {
  readonly #ids = new WeakMap<Backend, string>();

  constructor(readonly cookieName: string) {}

  /** An opaque, stable id: the same backend URL gives the same id in every lb process. */
  idOf(backend: Backend): string {
    let id = this.#ids.get(backend);
    if (id === undefined) this.#ids.set(backend, (id = Bun.hash.xxHash32(backend.url).toString(36)));
    return id;
  }

  /** The available backend the request's cookie names, if any. */
  pinned(available: readonly Backend[], headers: Headers): Backend | undefined {
    const id = cookieValue(headers, this.cookieName);
    return id === undefined ? undefined : available.find((b) => this.idOf(b) === id);
  }

  /** Candidates with the pinned backend first, then the policy's order without it. */
  prefer(pinned: Backend | undefined, candidates: readonly Backend[]): readonly Backend[] {
    return pinned ? preferFirst(pinned, candidates) : candidates;
  }

  /** The Set-Cookie value that pins a client to `backend`. */
  cookieFor(backend: Backend): string {
    return `${this.cookieName}=${this.idOf(backend)}; Path=/; HttpOnly; SameSite=Lax`;
  }
}
