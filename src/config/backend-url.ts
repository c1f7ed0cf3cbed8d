/** Validation of backend addresses: the only places lb will ever send a request. */

export type UrlCheck = { url: string } | { error: string };

/**
 * Normalises a backend address to its origin (`http://host:port`). A path, query or fragment is refused rather
 * than silently dropped, so a typo such as `http://app:8080/api` is not mistaken for a path prefix.
 */
export function checkBackendUrl(text: string): UrlCheck {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { error: `"${text}" is not a URL; write it like http://10.0.0.5:8080` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { error: `"${text}" uses ${url.protocol.slice(0, -1)}; backends must be http:// or https://` };
  }
  if (!url.hostname) return { error: `"${text}" has no host; write it like http://10.0.0.5:8080` };
  if (url.username || url.password) return { error: `"${text}" contains credentials; lb does not send them` };
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) {
    return { error: `"${text}" has a path, query or fragment; give only scheme, host and port (http://host:port)` };
  }
  return { url: url.origin };
}
