/** How a backend is shown by the admin API, `lb backends` and the dashboard: one shape, extended where needed. */
import { type Backend, describeState } from "../pool/backend.ts";

/** What every view of a backend carries. */
export function backendSummary(backend: Backend) {
  return {
    id: backend.name,
    url: backend.url,
    state: describeState(backend),
    since: new Date(backend.stateSince).toISOString(),
    weight: backend.weight,
    inflight: backend.inflight,
    requests: backend.stats.requests,
    errors: backend.stats.errors,
  };
}

/** The admin API's view (GET /api/backends): the summary plus its pool, the check state and retries. */
export function backendJson(backend: Backend, pool: string) {
  const { health, lastCheck } = backend;
  return {
    ...backendSummary(backend),
    pool,
    health: health.status,
    passes: health.passes,
    failures: health.failures,
    lastCheck: lastCheck && { ok: lastCheck.ok, reason: lastCheck.reason, at: new Date(lastCheck.at).toISOString() },
    ejected: backend.ejected,
    retries: backend.stats.retries,
  };
}
