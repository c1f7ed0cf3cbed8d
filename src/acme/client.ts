/**
 * One certificate order from an ACME CA (RFC 8555), through the acme-client library: the account (created, or found
 * again by its key), the order for one name, its HTTP-01 challenge, the CSR and the certificate. The key is a new
 * ECDSA P-256 one per certificate. Retries and their timing are the scheduler's (scheduler.ts), not the library's:
 * each attempt is logged there.
 */
import * as acme from "acme-client";
import { Agent } from "node:https";
import type { Config } from "../config/types.ts";
import type { ChallengeAnswers } from "./challenges.ts";
import type { StateStore, StoredPair } from "./store.ts";

/** A CA that accepts the connection and then says nothing must not hold an order forever. */
const REQUEST_TIMEOUT_MS = 30_000;

export type AcmeAccountConfig = Pick<Config, "acmeCa" | "acmeCaCert" | "acmeEmail" | "acmeEabKid" | "acmeEabHmac">;

/** Orders certificates from one CA with one account. */
export type CertificateOrderer = (name: string) => Promise<StoredPair>;

export function acmeOrderer(config: AcmeAccountConfig, store: StateStore, challenges: ChallengeAnswers, caCertPem: string | null): CertificateOrderer {
  configureHttp(caCertPem);
  // Once per process: orders for several names start together, and must not each make an account.
  let account: Promise<string> | undefined;
  return async (name) => {
    await reachDirectory(config.acmeCa, caCertPem);
    const client = new acme.Client({
      directoryUrl: config.acmeCa,
      accountKey: await (account ??= accountKey(store).catch((error) => {
        account = undefined; // a disk that failed once may not fail again
        throw error;
      })),
      ...(config.acmeEabKid && { externalAccountBinding: { kid: config.acmeEabKid, hmacKey: config.acmeEabHmac } }),
    });
    const [key, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, await acme.crypto.createPrivateEcdsaKey());
    const cert = await client.auto({
      csr,
      email: config.acmeEmail || undefined,
      termsOfServiceAgreed: true,
      challengePriority: ["http-01"],
      // Otherwise the library first fetches http://NAME:80 itself through the system's DNS, and retries that
      // silently for minutes; the CA checks anyway, and its verdict is the one that counts.
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => challenges.add(challenge.token, keyAuthorization),
      challengeRemoveFn: async (_authz, challenge) => challenges.remove(challenge.token),
    });
    return { cert, key: key.toString() };
  };
}

/** The account's key: the stored one, or a new one stored (unless another instance stored one first) and used. */
async function accountKey(store: StateStore): Promise<string> {
  return store.readAccountKey() ?? store.keepAccountKey((await acme.crypto.createPrivateEcdsaKey()).toString());
}

/**
 * Fetches the directory first, so that a CA that is down or not trusted is reported as such: the library, given no
 * answer at all, throws a TypeError of its own instead of the network error.
 */
async function reachDirectory(url: string, caCertPem: string | null): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...(caCertPem && { tls: { ca: caCertPem } }) });
  } catch (error) {
    const { message, code } = error as Error & { code?: string };
    throw new Error(`cannot reach the ACME directory: ${code && !message.includes(code) ? `${code}: ` : ""}${message}`);
  }
  if (!response.ok) throw new Error(`the ACME directory answered ${response.status} ${response.statusText}`);
}

/** The library's HTTP client (one per process): a timeout, no retries of its own, and the CA certificate to trust. */
function configureHttp(caCertPem: string | null): void {
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings!.retryMaxAttempts = 0;
  if (caCertPem) acme.axios.defaults.httpsAgent = new Agent({ ca: caCertPem });
}
