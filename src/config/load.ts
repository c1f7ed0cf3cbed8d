/** Turns config files and command-line values into one validated Config, or one line that says what is wrong. */
import { extname } from "node:path";
import { closest } from "./did-you-mean.ts";
import { type FileFormat, type KeyPath, formatKeyPath, lineOfPath, lineOfSyntaxError } from "./places.ts";
import { type PlaceOf, checkRouting, parsePools, parseRoutes, writtenPoolNames } from "./pools.ts";
import { DEFAULT_ADMIN_PORT, SETTINGS, parseSettingAt } from "./settings.ts";
import { checkPoolKinds, checkTcp, parseTcp } from "./tcp.ts";
import { type Config, type Environment, ACME_ROUTES, acmeNames, servesTls } from "./types.ts";
import { isLoopback } from "./values.ts";

/** A problem with the user's input: printed as one line, exit status 2, no stack trace. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Values from one place (a file or the command line), keyed by setting name (`health-path`). */
export interface Layer {
  source: string;
  values: Record<string, unknown>;
  /** Where a value was given, for messages ("lb.toml:3", "environment LB_PORT"); the source alone when absent. */
  placeOf?: (path: KeyPath) => string;
}

const FORMATS: Record<string, { format: FileFormat; parse: (text: string) => unknown }> = {
  ".toml": { format: "toml", parse: (text) => Bun.TOML.parse(text) },
  ".yaml": { format: "yaml", parse: (text) => Bun.YAML.parse(text) },
  ".yml": { format: "yaml", parse: (text) => Bun.YAML.parse(text) },
  ".json": { format: "json", parse: (text) => JSON.parse(text) },
};

export async function readConfigFile(path: string): Promise<Layer> {
  const reader = FORMATS[extname(path).toLowerCase()];
  if (!reader) throw new ConfigError(`${path}: unknown config format; name the file .toml, .yaml, .yml or .json`);
  const { format, parse } = reader;
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String((error as Error).message);
    throw new ConfigError(`${path}: cannot read the config file (${reason}); check the --config path`);
  }
  let values: unknown;
  try {
    values = parse(text);
  } catch (error) {
    const { message } = error as Error;
    const line = format === "json" ? undefined : lineOfSyntaxError(text, parse, message);
    const reason = message.split("\n")[0]!.replace(/^(TOML|YAML|JSON) Parse error: /, "");
    throw new ConfigError(`${line ? `${path}:${line}` : path}: not valid ${format.toUpperCase()}: ${reason}`);
  }
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ConfigError(`${path}: the config must be a table of settings such as port = 8000`);
  }
  const placeOf = (keys: KeyPath) => {
    const line = lineOfPath(text, format, keys);
    return line ? `${path}:${line}` : path;
  };
  return { source: path, values: values as Record<string, unknown>, placeOf };
}

function placeOf(layer: Layer, path: KeyPath): string {
  return layer.placeOf?.(path) ?? layer.source;
}

/**
 * Later layers override earlier ones (file, then command line); unset settings take their defaults.
 * Every problem in every layer is reported at once, each with where it came from.
 */
export function resolveConfig(layers: Layer[], env: Environment): Config {
  const { config, problems } = checkConfig(layers, env);
  if (problems.length) throw new ConfigError(problems.join("; "));
  return config;
}

/** The config the layers make, and every problem found in them, each with its place. */
export function checkConfig(layers: Layer[], env: Environment): { config: Config; problems: string[] } {
  const problems: string[] = [];
  const known = SETTINGS.map((s) => s.name);
  for (const layer of layers) {
    for (const key of Object.keys(layer.values)) {
      // "$schema" points editors at deploy/lb.schema.json; it is not a setting.
      if (!known.includes(key) && !SECTIONS.includes(key)) problems.push(`${placeOf(layer, [key])}: ${unknownSetting(key, known)}`);
    }
  }
  const config: Record<string, unknown> = { pools: [], routes: [], tcp: [] };
  let backendsFailed = false;
  for (const setting of SETTINGS) {
    const { fallback } = setting;
    config[setting.key] = typeof fallback === "function" ? fallback(env) : fallback;
    for (const layer of layers) {
      const raw = layer.values[setting.name];
      if (raw === undefined) continue;
      const parsed = parseSettingAt(setting, raw, `${placeOf(layer, [setting.name])}: ${setting.name}`, problems);
      if (parsed) config[setting.key] = parsed.value;
      else if (setting.key === "backends") backendsFailed = true;
    }
  }
  const result = config as unknown as Config;
  // Pools and routes come from the config file; top-level backends that are written but wrong still form "default".
  const routing = layers.findLast((layer) => ROUTING.some((key) => layer.values[key] !== undefined));
  if (routing) {
    const at: PlaceOf = (path) => `${placeOf(routing, path)}: ${formatKeyPath(path)}`;
    const { pools, routes, tcp } = routing.values;
    const poolNames = writtenPoolNames(pools, result.backends.length > 0 || backendsFailed);
    if (pools !== undefined) result.pools = parsePools(pools, at, problems);
    if (routes !== undefined) result.routes = parseRoutes(routes, poolNames, at, problems);
    const written = tcp === undefined ? [] : parseTcp(tcp, at, problems);
    result.tcp = written.map(({ spec }) => spec);
    checkRouting(result, poolNames, routes !== undefined, at, problems);
    checkTcp(result, written, poolNames, at, problems);
  }
  // Without a layer that gives backends or pools there is nothing to check, and no place is asked for.
  const backendsLayer = layers.findLast((layer) => layer.values.backends !== undefined);
  checkPoolKinds(result, (path) => `${placeOf((path[0] === "backends" ? backendsLayer : routing)!, path)}: ${formatKeyPath(path)}`, problems);
  if (problems.length === 0 && result.backends.length === 0 && result.pools.length === 0) {
    problems.push("no backends: give their URLs, e.g. lb http://localhost:8080 http://localhost:8081 (or try: lb demo)");
  }
  if (Boolean(result.tlsCert) !== Boolean(result.tlsKey)) {
    problems.push("tls: give both --tls-cert and --tls-key (a certificate and its private key), or neither");
  }
  if (result.tlsSni.length && !result.tlsCert) problems.push("tls-sni: give the default certificate too (--tls-cert and --tls-key)");
  // An --acme written wrong is reported as such, not again as TLS missing.
  const tls = servesTls(result) || layers.some((layer) => layer.values.acme !== undefined);
  if (result.httpRedirectPort && !tls) problems.push("http-redirect-port: redirects to HTTPS need --tls-cert and --tls-key (or --acme)");
  if (result.http3 && !tls) problems.push("http3: HTTP/3 runs over TLS only; give --tls-cert and --tls-key (or --acme)");
  if (result.acme.length) problems.push(...acmeProblems(result, (name) => layers.some((layer) => layer.values[name] !== undefined)));
  if (result.admin && !isLoopback(result.admin.host) && !result.adminToken) {
    problems.push(
      `admin: ${result.admin.host} is not a loopback address, so the admin API needs a token: set --admin-token or LB_ADMIN_TOKEN (or use --admin 127.0.0.1:${DEFAULT_ADMIN_PORT})`,
    );
  }
  return { config: result, problems };
}

/**
 * --acme needs the plain-HTTP listener for its challenges, so it defaults --http-redirect-port to 80, and --port to
 * 443 (what browsers ask for), unless given; "routes" must find a host to take. Fills in those defaults.
 */
function acmeProblems(config: Config, given: (name: string) => boolean): string[] {
  if (!given("port")) config.port = 443;
  if (!given("http-redirect-port")) config.httpRedirectPort = 80;
  const problems: string[] = [];
  if (!config.httpRedirectPort) problems.push("acme: the CA checks each name over plain HTTP; give --http-redirect-port a port (80 unless something forwards it)");
  if (config.acme.includes(ACME_ROUTES) && acmeNames(config).length === 0) {
    problems.push('acme: "routes" takes the routes\' exact hosts, and no route has one (wildcard hosts need DNS-01, which lb does not do)');
  }
  if (Boolean(config.acmeEabKid) !== Boolean(config.acmeEabHmac)) problems.push("acme-eab: give both --acme-eab-kid and --acme-eab-hmac, or neither");
  return problems;
}

/** The tables of pools, routes (pools.ts) and layer-4 listeners (tcp.ts): the config file's, never a flag's. */
const ROUTING = ["pools", "routes", "tcp"];
/** Config file keys that are not settings: the schema link for editors, and the routing tables. */
const SECTIONS = ["$schema", ...ROUTING];

function unknownSetting(key: string, known: readonly string[]): string {
  const dashed = key.replaceAll("_", "-");
  if (dashed !== key && known.includes(dashed)) return `"${key}" is not a setting; settings use dashes: write ${dashed}`;
  const guess = closest(key, known);
  return guess ? `"${key}" is not a setting; did you mean ${guess}?` : `"${key}" is not a setting; lb schema lists them all`;
}
