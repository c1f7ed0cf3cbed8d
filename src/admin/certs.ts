/** `lb certs`: the certificates a running lb serves (files and --acme), from GET /api/certificates, as a table. */
import type { HelpPage } from "../cli/cli.ts";
import { ADMIN_ARGS, type Environment, adminClient, formatTable, helpOptions } from "./client.ts";

export const CERTS_HELP: HelpPage = {
  description:
    "Lists the certificates a running lb serves: each one's names, where it came from (a file, or ACME), issuer, serial, " +
    "expiry, and for ACME the next renewal, or for a name still without one the next try and why the last one failed.",
  usage: ["lb certs [--admin host:port] [--admin-token token]"],
  sections: [{ title: "Options", options: helpOptions(ADMIN_ARGS) }],
  examples: ["lb certs", "curl -s localhost:7019/api/certificates    # the same as JSON"],
};

interface CertificateJson {
  names: string[];
  source: "file" | "acme";
  path?: string;
  ca?: string;
  issuer?: string;
  serial?: string;
  notAfter?: string;
  renewal?: string;
  nextTry?: string;
  lastError?: string;
}

export async function runCertsCommand(argv: string[], env: Environment): Promise<string> {
  const { call } = await adminClient(argv, ADMIN_ARGS, "lb certs", env);
  const { certificates } = (await call("GET", "/api/certificates")) as { certificates: CertificateJson[] };
  if (certificates.length === 0) return "lb serves no certificates (plain HTTP: no --tls-cert, no --acme)";
  const rows = certificates.map((c) => [
    c.names.join(","),
    c.source === "file" ? `file ${c.path}` : `acme ${c.ca}`,
    c.issuer ?? "-",
    c.serial ?? "-",
    c.notAfter ?? "none yet",
    c.renewal ? `renewal ${c.renewal}` : c.nextTry ? `next try ${c.nextTry}` : "-",
    c.lastError ?? "",
  ]);
  return formatTable(["NAMES", "SOURCE", "ISSUER", "SERIAL", "NOT AFTER", "NEXT", "LAST ERROR"], rows).trimEnd();
}
