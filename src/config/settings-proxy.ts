/** The PROXY protocol's settings (--accept-proxy, --proxy-trusted, send-proxy; docs/proxy-protocol.md), part of the one settings table (settings.ts). */
import { type Cidr, LOOPBACK_RANGES, parseCidr } from "../net/ip.ts";
import { cidrList } from "./edge-values.ts";
import { SEND_PROXY_VERSIONS } from "./types.ts";
import type { SettingSpec } from "./settings.ts";
import { boolean, oneOf } from "./values.ts";

export const PROXY_SPECS: SettingSpec[] = [
  {
    key: "acceptProxy", group: "listening", restart: true, type: "boolean", fallback: false,
    description: "Every connection on the proxy port starts with a PROXY protocol header (v1 or v2) from a balancer in --proxy-trusted; its source address is the client's. Others are closed",
    example: "--accept-proxy", parse: boolean,
  },
  {
    key: "proxyTrusted", group: "listening", restart: true, type: "string", valueHint: "cidr,cidr", repeatable: true,
    fallback: LOOPBACK_RANGES.map((range) => parseCidr(range) as Cidr), shownDefault: "loopback",
    description: "With --accept-proxy, the peers (L4 balancers) that may send a PROXY header; a connection from anyone else is closed",
    example: "--proxy-trusted 10.0.0.0/8,fd00::/8", parse: cidrList,
  },
  {
    key: "sendProxy", perPool: true, group: "backends", type: "string", valueHint: SEND_PROXY_VERSIONS.join("|"), fallback: "",
    description: "Start each connection to a backend, health checks too, with a PROXY protocol header of this version (for nginx proxy_protocol, HAProxy accept-proxy); off when empty",
    example: "--send-proxy v2", parse: oneOf(SEND_PROXY_VERSIONS),
  },
];
