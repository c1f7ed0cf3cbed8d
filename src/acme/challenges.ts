/**
 * HTTP-01 answers (RFC 8555 §8.3): while an order waits for the CA, http://NAME/.well-known/acme-challenge/TOKEN must
 * answer the key authorization. lb answers on its plain-HTTP listener (--http-redirect-port), which redirects every
 * other request to HTTPS. Answers are kept here and in the state directory, so that an instance sharing that
 * directory answers for an order another instance placed (the CA may reach either behind a balancer).
 */
import type { StateStore } from "./store.ts";

export const CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

/** A token as ACME makes them (base64url); anything else is not looked up, on disk least of all. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export class ChallengeAnswers {
  readonly #answers = new Map<string, string>();

  constructor(private readonly store: StateStore) {}

  add(token: string, keyAuthorization: string): void {
    this.#answers.set(token, keyAuthorization);
    this.store.writeChallenge(token, keyAuthorization);
  }

  remove(token: string): void {
    this.#answers.delete(token);
    this.store.removeChallenge(token);
  }

  /** The answer to a request for `path` when it asks for a challenge (404 for an unknown token), else null. */
  answer(path: string): Response | null {
    if (!path.startsWith(CHALLENGE_PREFIX)) return null;
    const token = path.slice(CHALLENGE_PREFIX.length);
    const keyAuthorization = TOKEN.test(token) ? (this.#answers.get(token) ?? this.store.readChallenge(token)) : null;
    return keyAuthorization === null
      ? new Response("no such ACME challenge\n", { status: 404, headers: { "content-type": "text/plain" } })
      : new Response(keyAuthorization, { headers: { "content-type": "text/plain" } });
  }
}
