/**
 * What a served certificate says, for files (--tls-cert, --tls-sni) and ACME alike: its names, issuer, serial and
 * validity, read with node:crypto. `lb certs`, /metrics and the log lines after a reload all show these facts; the
 * ACME side also uses checkPair to refuse a stored certificate that is damaged.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Config } from "../config/types.ts";

export interface CertificateFacts {
  /** The DNS names it covers (its subjectAltName; the subject's CN when it has none). */
  names: string[];
  /** The issuer's common name (or the whole issuer name when it has none). */
  issuer: string;
  /** Hex, as openssl prints it. */
  serial: string;
  notBefore: number;
  notAfter: number;
}

/** Where a served certificate came from. */
export type CertificateSource = { kind: "file"; path: string } | { kind: "acme"; ca: string };

/** A certificate as `lb certs`, GET /api/certificates and /metrics show it. */
export interface CertificateStatus {
  names: string[];
  source: CertificateSource;
  /** Null for a name --acme has no certificate for yet. */
  facts: CertificateFacts | null;
  /** --acme: when the renewal is due, or (without a certificate) when the next try is. */
  next?: number;
  /** --acme: why the last try failed, while it has not succeeded since. */
  lastError?: string | null;
}

export type FileCertificate = CertificateStatus & { source: { kind: "file"; path: string }; facts: CertificateFacts };

/** The certificate files a config serves (--tls-cert, then each --tls-sni); one that does not parse is left out. */
export function fileCertificates(config: Pick<Config, "tlsCert" | "tlsSni">): FileCertificate[] {
  const paths = config.tlsCert ? [config.tlsCert, ...config.tlsSni.map((sni) => sni.cert)] : [];
  return paths.flatMap((path) => {
    try {
      const facts = describeCertificate(readFileSync(path, "utf8"));
      return [{ names: facts.names, source: { kind: "file" as const, path }, facts }];
    } catch {
      return [];
    }
  });
}

/** A status as JSON: times as ISO text, the source as "file" or "acme" with its path or CA. */
export function certificateJson({ names, source, facts, next, lastError }: CertificateStatus): Record<string, unknown> {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    names,
    source: source.kind,
    ...(source.kind === "file" ? { path: source.path } : { ca: source.ca }),
    ...(facts ? { issuer: facts.issuer, serial: facts.serial, notBefore: iso(facts.notBefore), notAfter: iso(facts.notAfter) } : { pending: true }),
    ...(next !== undefined && { [facts ? "renewal" : "nextTry"]: iso(next) }),
    ...(lastError && { lastError }),
  };
}

/** The facts of the first certificate of a PEM chain; throws when it does not parse. */
export function describeCertificate(chainPem: string): CertificateFacts {
  const leaf = new X509Certificate(chainPem);
  const altNames = (leaf.subjectAltName ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4).toLowerCase());
  return {
    names: altNames.length ? altNames : [commonName(leaf.subject)],
    issuer: commonName(leaf.issuer),
    serial: leaf.serialNumber,
    notBefore: leaf.validFromDate.getTime(),
    notAfter: leaf.validToDate.getTime(),
  };
}

function commonName(distinguished: string): string {
  return /^CN=(.*)$/m.exec(distinguished)?.[1] ?? distinguished.replaceAll("\n", ", ");
}

/**
 * Why a certificate chain and key cannot be served at all, or null when they can: each must parse and the key must be
 * the certificate's (what TLS itself refuses, said with the files' names rather than as an OpenSSL error).
 */
export function keyProblem(chainPem: string, keyPem: string): string | null {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chainPem);
  } catch {
    return "the certificate does not parse";
  }
  try {
    return leaf.checkPrivateKey(createPrivateKey(keyPem)) ? null : "the private key is not the certificate's";
  } catch {
    return "the private key does not parse";
  }
}

/**
 * Why a certificate chain and key must not be served for `name` at `now`, or null when they may: keyProblem's checks,
 * then the certificate must cover the name, be valid now, and carry its issuer's signature when the chain includes
 * the issuer (a flipped bit fails it).
 */
export function pairProblem(chainPem: string, keyPem: string, name: string, now: number): string | null {
  const unusable = keyProblem(chainPem, keyPem);
  if (unusable) return unusable;
  const leaf = new X509Certificate(chainPem);
  const issuerPem = splitPemChain(chainPem)[1];
  if (issuerPem) {
    try {
      if (!leaf.verify(new X509Certificate(issuerPem).publicKey)) return "the issuer's signature does not match";
    } catch {
      return "the chain's issuer certificate does not parse";
    }
  }
  const facts = describeCertificate(chainPem);
  if (!facts.names.includes(name)) return `it is for ${facts.names.join(", ")}, not ${name}`;
  if (now >= facts.notAfter) return `it expired on ${new Date(facts.notAfter).toISOString()}`;
  return null;
}

/** The certificates of a PEM chain, in order. */
export function splitPemChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** "serial 0A1B…, not after 2027-03-01T12:00:00Z": how log lines name a certificate. */
export function certificateSummary(facts: CertificateFacts): string {
  return `serial ${facts.serial}, not after ${new Date(facts.notAfter).toISOString().replace(/\.000Z$/, "Z")}`;
}
