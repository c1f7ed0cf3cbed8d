/** The edge policies' settings (src/edge/, docs/edge.md), part of the one settings table (settings.ts). */
import { NO_HEADER_RULES, cidrList, headerRules, rate, rateKey } from "./edge-values.ts";
import type { SettingSpec } from "./settings.ts";
import { integer } from "./values.ts";

export const EDGE_SETTINGS: SettingSpec[] = [
  {
    key: "trustedProxies", group: "edge", type: "string", valueHint: "cidr,cidr", fallback: [], repeatable: true,
    description: "Peers (balancers in front of lb) whose X-Forwarded-For or Forwarded names the client; from others those headers change nothing",
    example: "--trusted-proxies 10.0.0.0/8,fd00::/8", parse: cidrList,
  },
  {
    key: "allow", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "cidr,cidr", fallback: [], repeatable: true,
    description: "Only clients in these address ranges are served (403 for the rest); empty: everyone",
    example: "--allow 10.0.0.0/8,2001:db8::/32", parse: cidrList,
  },
  {
    key: "deny", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "cidr,cidr", fallback: [], repeatable: true,
    description: "Clients in these address ranges get 403, even when --allow lists them",
    example: "--deny 192.0.2.0/24", parse: cidrList,
  },
  {
    key: "rateLimit", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "n/s|n/m|n/h", fallback: null,
    description: "Most requests per key (--rate-limit-key) in that time; more get 429 with Retry-After (off when empty)",
    example: "--rate-limit 100/s", parse: rate,
  },
  {
    key: "rateLimitBurst", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "n", fallback: 0, shownDefault: "the rate's count",
    description: "Requests a key may send at once before the rate applies",
    example: "--rate-limit-burst 20", parse: integer(0, 1_000_000_000, "a request count"),
  },
  {
    key: "rateLimitKey", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "ip|header:NAME|cookie:NAME", fallback: { kind: "ip" },
    description: "What --rate-limit counts by; a request without that header or cookie counts by its client address",
    example: "--rate-limit-key header:X-Api-Key", parse: rateKey,
  },
  {
    key: "requestHeaders", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "set|add|remove Name[: value]", fallback: NO_HEADER_RULES, repeatable: true,
    description: "A rule for the fields sent to the backend; values may hold {client_ip}, {request_id}, {host}; repeat for more",
    example: '--request-headers "set X-Real-IP: {client_ip}"', parse: headerRules,
  },
  {
    key: "responseHeaders", perPool: true, perRoute: true, group: "edge", type: "string", valueHint: "set|add|remove Name[: value]", fallback: NO_HEADER_RULES, repeatable: true,
    description: "A rule for the fields of the backend's answer to the client, as --request-headers; repeat for more",
    example: '--response-headers "set Strict-Transport-Security: max-age=31536000"', parse: headerRules,
  },
];
