import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether an Authorization header carries the token, compared in constant time (both sides are hashed first so
 * their lengths match and the comparison time says nothing about the token).
 */
export function bearerMatches(authorization: string | null, token: string): boolean {
  const given = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1] ?? "";
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(token)) && given.length > 0;
}
