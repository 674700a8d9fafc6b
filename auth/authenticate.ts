import type { Principal } from "@/core/actor.ts";
import { unauthorized } from "@/core/errors.ts";
import { authenticateApiKey, isApiKey } from "./api-keys.ts";
import { findLiveClient } from "./clients.ts";
import type { Scope } from "./scopes.ts";
import type { AuthService, LivePrincipal } from "./service.ts";
import { findLiveSession } from "./sessions.ts";
import { verifyAccessToken } from "./tokens.ts";

/**
 * The caller behind an `Authorization: Bearer <...>` header: an access token of a live login
 * session, a personal API key ("pdx_..."), or an M2M client's access token; 401 otherwise.
 * One indexed query checks that the credential is still alive, or none while the change feed
 * keeps the cache of live credentials true (logout, disable, revoke and client disable take
 * effect on the next request, on every instance: see live-credentials.ts).
 */
const bearerPattern = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export async function authenticate(
  auth: AuthService,
  authorization: string | undefined,
): Promise<Principal> {
  const token = authorization?.match(bearerPattern)?.[1];
  if (!token) throw unauthorized();
  if (isApiKey(token)) {
    const principal = await authenticateApiKey(auth, token);
    if (!principal) throw unauthorized("Invalid, expired or revoked API key");
    return principal;
  }
  const claims = await verifyAccessToken(auth.tokens, token);
  if (claims.sid) {
    const live = await liveOrGone(auth, `session:${claims.sid}`, claims.sub, async (now) => {
      const s = await findLiveSession(auth.sql, claims.sid!, claims.sub, now);
      return s && { value: { role: s.role }, validUntil: s.expiresAt.getTime() };
    });
    return { userId: claims.sub, role: live.role, sessionId: claims.sid, via: "session" };
  }
  const client = await liveOrGone(auth, `client:${claims.client_id}`, claims.sub, async () => {
    const c = await findLiveClient(auth.sql, claims.client_id!, claims.sub);
    return c && { value: c, validUntil: Infinity };
  });
  const scopes = client.scopes ?? [];
  const granted = (claims.scope ?? "").split(" ").filter((s) => scopes.includes(s as Scope));
  return { userId: claims.sub, role: client.role, via: "client", scopes: granted };
}

/** The credential's live state: from the cache while it can be trusted, else the database. */
async function liveOrGone(
  auth: AuthService,
  key: string,
  userId: string,
  lookUp: (now: Date) => Promise<{ value: LivePrincipal; validUntil: number } | null>,
): Promise<LivePrincipal> {
  const now = auth.clock();
  const cached = auth.live.get(key, userId, now.getTime());
  if (cached) return cached;
  const generation = auth.live.generation;
  const found = await lookUp(now);
  if (!found) throw unauthorized("The session or client of this token is no longer valid");
  auth.live.put(key, userId, found.value, found.validUntil, generation, now.getTime());
  return found.value;
}
