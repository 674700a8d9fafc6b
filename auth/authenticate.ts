import type { Principal } from "@/core/actor.ts";
import { unauthorized } from "@/core/errors.ts";
import { authenticateApiKey, isApiKey } from "./api-keys.ts";
import { findLiveClient } from "./clients.ts";
import type { Scope } from "./scopes.ts";
import type { AuthService } from "./service.ts";
import { findLiveSession } from "./sessions.ts";
import { verifyAccessToken } from "./tokens.ts";

/**
 * The caller behind an `Authorization: Bearer <...>` header: an access token of a live login
 * session, a personal API key ("pdx_..."), or an M2M client's access token; 401 otherwise.
 * One indexed query checks that the credential is still alive (logout, disable, revoke and
 * client disable all take effect on the next request).
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
  const gone = unauthorized("The session or client of this token is no longer valid");
  if (claims.sid) {
    const live = await findLiveSession(auth.sql, claims.sid, claims.sub, auth.clock());
    if (!live) throw gone;
    return { userId: claims.sub, role: live.role, sessionId: claims.sid, via: "session" };
  }
  const client = await findLiveClient(auth.sql, claims.client_id!, claims.sub);
  if (!client) throw gone;
  const granted = (claims.scope ?? "").split(" ").filter((s) => client.scopes.includes(s as Scope));
  return { userId: claims.sub, role: client.role, via: "client", scopes: granted };
}
