import { recordAudit } from "@/infra/audit.ts";
import { randomToken } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError, notFound, validationError } from "@/core/errors.ts";
import type { Scope } from "./scopes.ts";
import type { RequestMeta } from "@/core/actor.ts";
import type { AuthService } from "./service.ts";
import { isUuid } from "@/core/ids.ts";
import { hashToken, signAccessToken } from "./tokens.ts";
import type { Actor } from "@/core/actor.ts";

const CLIENT_SECRET_PREFIX = "pdxcs_";

interface ClientRow {
  id: string;
  name: string;
  userId: string;
  scopes: Scope[];
  createdBy: string | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  disabledAt: Date | null;
}

export function clientView(c: ClientRow) {
  return {
    client_id: c.id,
    name: c.name,
    user_id: c.userId,
    scopes: c.scopes,
    created_by: c.createdBy,
    created_at: c.createdAt.toISOString(),
    last_used_at: c.lastUsedAt?.toISOString() ?? null,
    disabled_at: c.disabledAt?.toISOString() ?? null,
  };
}

/** RFC 6749 §5.2 error codes, in our {detail, code} body. */
export const oauthError = (code: string, status: 400 | 401, detail: string) =>
  new AppError(
    code,
    status,
    detail,
    status === 401 ? { headers: { "WWW-Authenticate": "Basic" } } : {},
  );
const invalidClient = () => oauthError("invalid_client", 401, "Client authentication failed");

/** The secret is in this answer only; the database keeps its SHA-256. */
export async function createClient(
  auth: AuthService,
  actor: Actor,
  input: { name: string; scopes: Scope[]; userId?: string },
) {
  const userId = input.userId ?? actor.userId;
  const [owner] = isUuid(userId) ? await auth.sql`SELECT 1 FROM users WHERE id = ${userId}` : [];
  if (!owner) throw validationError([{ path: "user_id", message: "no such user" }]);
  const secret = CLIENT_SECRET_PREFIX + randomToken(32);
  const scopes = [...new Set(input.scopes)];
  const [row] = await auth.sql<ClientRow[]>`
    INSERT INTO api_clients (name, secret_hash, user_id, scopes, created_by, created_at)
    VALUES (${input.name}, ${await hashToken(secret)}, ${userId}, ${scopes}, ${actor.userId},
      ${auth.clock()})
    RETURNING id, name, user_id, scopes, created_by, created_at, last_used_at, disabled_at`;
  await recordAudit(auth.sql, {
    event: "admin.client_created",
    userId,
    actorId: actor.userId,
    ip: actor.ip,
    requestId: actor.requestId,
    details: { client_id: row.id, name: row.name, scopes },
  });
  return { ...clientView(row), client_secret: secret };
}

export async function listClients(auth: AuthService) {
  const rows = await auth.sql<ClientRow[]>`
    SELECT id, name, user_id, scopes, created_by, created_at, last_used_at, disabled_at
    FROM api_clients ORDER BY created_at DESC, id DESC`;
  return rows.map(clientView);
}

/** Its tokens stop working on their next request (every use checks the client row). */
export async function disableClient(auth: AuthService, clientId: string, actor: Actor) {
  if (!isUuid(clientId)) throw notFound("No such client");
  const [row] = await auth.sql<ClientRow[]>`
    UPDATE api_clients SET disabled_at = coalesce(disabled_at, ${auth.clock()})
    WHERE id = ${clientId}
    RETURNING id, name, user_id, scopes, created_by, created_at, last_used_at, disabled_at`;
  if (!row) throw notFound("No such client");
  auth.live.changed(`client:${clientId}`); // the other instances hear it from the database
  await recordAudit(auth.sql, {
    event: "admin.client_disabled",
    userId: row.userId,
    actorId: actor.userId,
    ip: actor.ip,
    requestId: actor.requestId,
    details: { client_id: row.id },
  });
  return clientView(row);
}

/**
 * client_credentials grant: a short-lived access token, no refresh token. The scope is
 * what was asked for (space separated) or, when nothing was, everything the client has.
 */
export async function issueClientToken(
  auth: AuthService,
  input: { clientId: string; clientSecret: string; scope?: string },
  meta: RequestMeta,
) {
  // Per IP only: a client's secret is 256 random bits, beyond guessing, and a per-client
  // count would let anyone who knows a client id (not a secret) lock that client out.
  await auth.limiter.hit(auth.rules.clientTokenPerIp, meta.ip);
  const client = await authenticateClient(auth, input.clientId, input.clientSecret);
  if (!client) {
    await recordAudit(auth.sql, {
      event: "auth.client_auth_failed",
      ip: meta.ip,
      requestId: meta.requestId,
      details: { client_id: isUuid(input.clientId) ? input.clientId : null },
    });
    throw invalidClient();
  }
  const asked = input.scope?.split(" ").filter(Boolean);
  const scopes = asked ?? client.scopes;
  if (scopes.some((s) => !client.scopes.includes(s as Scope))) {
    throw oauthError("invalid_scope", 400, "The client may not have that scope");
  }
  const now = auth.clock();
  await auth.sql`UPDATE api_clients SET last_used_at = ${now} WHERE id = ${client.id}`;
  const access = await signAccessToken(auth.tokens, {
    userId: client.userId,
    clientId: client.id,
    scopes,
  });
  await recordAudit(auth.sql, {
    event: "auth.client_token",
    userId: client.userId,
    ip: meta.ip,
    requestId: meta.requestId,
    details: { client_id: client.id, scope: scopes.join(" ") },
  });
  return { accessToken: access.token, expiresIn: access.expiresIn, scope: scopes.join(" ") };
}

async function authenticateClient(auth: AuthService, clientId: string, secret: string) {
  // Hash first either way, so an unknown client id costs what a wrong secret costs.
  const presented = await hashToken(secret);
  if (!isUuid(clientId)) return null;
  const [row] = await auth.sql<(ClientRow & { secretHash: string })[]>`
    SELECT c.id, c.user_id, c.scopes, c.secret_hash FROM api_clients c
      JOIN users u ON u.id = c.user_id
    WHERE c.id = ${clientId} AND c.disabled_at IS NULL AND u.disabled_at IS NULL`;
  if (!row || !constantTimeEqual(row.secretHash, presented)) return null;
  return row;
}

/** The per-request check behind a client's access token. */
export async function findLiveClient(
  sql: Sql,
  clientId: string,
  userId: string,
): Promise<{ role: "user" | "admin"; scopes: Scope[] } | null> {
  const [row] = await sql<{ role: "user" | "admin"; scopes: Scope[] }[]>`
    SELECT u.role, c.scopes FROM api_clients c JOIN users u ON u.id = c.user_id
    WHERE c.id = ${clientId} AND c.user_id = ${userId}
      AND c.disabled_at IS NULL AND u.disabled_at IS NULL`;
  return row ?? null;
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
