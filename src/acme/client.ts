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
/** Status polls of a pending challenge or order start 1 s apart, doubling to 30 s (the library's 5 s first wait made
 * every order whose check was not done at the first look take 5 s more). */
const POLL_BACKOFF = { backoffMin: 1000, backoffMax: 30_000 };

export type AcmeAccountConfig = Pick<Config, "acmeCa" | "acmeCaCert" | "acmeEmail" | "acmeEabKid" | "acmeEabHmac">;

/** Orders certificates from one CA with one account. */
export type CertificateOrderer = (name: string) => Promise<StoredPair>;

export function acmeOrderer(config: AcmeAccountConfig, store: StateStore, challenges: ChallengeAnswers, caCertPem: string | null): CertificateOrderer {
  configureHttp(caCertPem);
  // Once per process, and again after a failed order (the account may be what failed): orders for several names start
  // together and share one account rather than each registering.
  let account: Promise<Account> | undefined;
  const accountOnce = () => (account ??= register(config, store));
  return async (name) => {
    await reachDirectory(config.acmeCa, caCertPem);
    try {
      const { key: accountKey, url: accountUrl } = await accountOnce();
      const client = new acme.Client({ directoryUrl: config.acmeCa, accountKey, accountUrl, ...POLL_BACKOFF, ...externalAccountBinding(config) });
      const [key, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, await acme.crypto.createPrivateEcdsaKey());
      const cert = await client.auto({
        csr,
        challengePriority: ["http-01"],
        // Otherwise the library first fetches http://NAME:80 itself through the system's DNS, and retries that
        // silently for minutes; the CA checks anyway, and its verdict is the one that counts.
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => challenges.add(challenge.token, keyAuthorization),
        challengeRemoveFn: async (_authz, challenge) => challenges.remove(challenge.token),
      });
      return { cert, key: key.toString() };
    } catch (error) {
      account = undefined;
      throw error;
    }
  };
}

interface Account {
  key: string;
  url: string;
}

/**
 * The account of the stored key (the key made and stored first when there is none): created, or found again and its
 * contact set to --acme-email. The contact is always sent, empty without an email: an existing account must not get
 * an update with nothing in it, which Pebble refuses (RFC 8555 asks for POST-as-GET there), as the library would send.
 */
async function register(config: AcmeAccountConfig, store: StateStore): Promise<Account> {
  const key = store.readAccountKey() ?? store.keepAccountKey((await acme.crypto.createPrivateEcdsaKey()).toString());
  const client = new acme.Client({ directoryUrl: config.acmeCa, accountKey: key, ...externalAccountBinding(config) });
  await client.createAccount({ termsOfServiceAgreed: true, contact: config.acmeEmail ? [`mailto:${config.acmeEmail}`] : [] });
  return { key, url: client.getAccountUrl() };
}

function externalAccountBinding(config: AcmeAccountConfig) {
  return config.acmeEabKid ? { externalAccountBinding: { kid: config.acmeEabKid, hmacKey: config.acmeEabHmac } } : {};
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
  await response.body?.cancel(); // the library fetches it again: only whether it answers counts here
  if (!response.ok) throw new Error(`the ACME directory answered ${response.status} ${response.statusText}`);
}

/** The library's HTTP client (one per process): a timeout, no retries of its own, and the CA certificate to trust. */
function configureHttp(caCertPem: string | null): void {
  acme.axios.defaults.timeout = REQUEST_TIMEOUT_MS;
  (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings!.retryMaxAttempts = 0;
  if (caCertPem) acme.axios.defaults.httpsAgent = new Agent({ ca: caCertPem });
}
