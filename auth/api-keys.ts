import { recordAudit } from "@/infra/audit.ts";
import { randomToken } from "@/infra/crypto/secrets.ts";
import { notFound } from "@/core/errors.ts";
import type { Principal } from "@/core/actor.ts";
import { type Scope, SCOPES } from "./scopes.ts";
import type { RequestMeta } from "@/core/actor.ts";
import type { AuthService } from "./service.ts";
import { isUuid } from "@/core/ids.ts";
import { hashToken } from "./tokens.ts";

/** Recognizable at a glance (and by secret scanners), and never shaped like a JWT. */
export const API_KEY_PREFIX = "pdx_";

export const API_KEY_LIFETIMES = {
  "1h": 3600,
  "12h": 12 * 3600,
  "1d": 86400,
  "7d": 7 * 86400,
  "30d": 30 * 86400,
} as const;
export type ApiKeyLifetime = keyof typeof API_KEY_LIFETIMES;

/** last_used_at is written at most this often per key, not on every request. */
const LAST_USED_PRECISION_MS = 60_000;

interface ApiKeyRow {
  id: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
}

export function apiKeyView(k: ApiKeyRow) {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    created_at: k.createdAt.toISOString(),
    expires_at: k.expiresAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
  };
}

export const isApiKey = (token: string) => token.startsWith(API_KEY_PREFIX);

/** The key itself is in the answer of this call only; the database keeps its SHA-256. */
export async function createApiKey(
  auth: AuthService,
  userId: string,
  input: { name: string; lifetime: ApiKeyLifetime; scopes?: Scope[] },
  meta: RequestMeta,
) {
  const key = API_KEY_PREFIX + randomToken(32);
  const now = auth.clock();
  const expiresAt = new Date(now.getTime() + API_KEY_LIFETIMES[input.lifetime] * 1000);
  const scopes = [...new Set(input.scopes ?? SCOPES)];
  const [row] = await auth.sql<ApiKeyRow[]>`
    INSERT INTO api_keys (user_id, name, key_hash, scopes, created_at, expires_at)
    VALUES (${userId}, ${input.name}, ${await hashToken(key)}, ${scopes}, ${now}, ${expiresAt})
    RETURNING id, name, scopes, created_at, expires_at, last_used_at`;
  await recordAudit(auth.sql, {
    event: "auth.api_key_created",
    userId,
    ip: meta.ip,
    requestId: meta.requestId,
    details: { api_key_id: row.id, name: row.name, scopes, expires_at: expiresAt.toISOString() },
  });
  return { ...apiKeyView(row), key };
}

/** The user's keys that still work, newest first. */
export async function listApiKeys(auth: AuthService, userId: string) {
  const rows = await auth.sql<ApiKeyRow[]>`
    SELECT id, name, scopes, created_at, expires_at, last_used_at FROM api_keys
    WHERE user_id = ${userId} AND revoked_at IS NULL AND expires_at > ${auth.clock()}
    ORDER BY created_at DESC, id DESC`;
  return rows.map(apiKeyView);
}

/** Another user's key is answered as a missing one. */
export async function revokeApiKey(
  auth: AuthService,
  userId: string,
  keyId: string,
  meta: RequestMeta,
): Promise<void> {
  if (!isUuid(keyId)) throw notFound("No such API key");
  const rows = await auth.sql`
    UPDATE api_keys SET revoked_at = coalesce(revoked_at, ${auth.clock()})
    WHERE id = ${keyId} AND user_id = ${userId}
    RETURNING id`;
  if (rows.length === 0) throw notFound("No such API key");
  await recordAudit(auth.sql, {
    event: "auth.api_key_revoked",
    userId,
    ip: meta.ip,
    requestId: meta.requestId,
    details: { api_key_id: keyId },
  });
}

/** One lookup by hash; revoked, expired or a disabled owner all fail at once. */
export async function authenticateApiKey(
  auth: AuthService,
  key: string,
): Promise<Principal | null> {
  const now = auth.clock();
  const [row] = await auth.sql<
    {
      id: string;
      userId: string;
      scopes: Scope[];
      lastUsedAt: Date | null;
      role: "user" | "admin";
    }[]
  >`
    SELECT k.id, k.user_id, k.scopes, k.last_used_at, u.role
    FROM api_keys k JOIN users u ON u.id = k.user_id
    WHERE k.key_hash = ${await hashToken(key)}
      AND k.revoked_at IS NULL AND k.expires_at > ${now} AND u.disabled_at IS NULL`;
  if (!row) return null;
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > LAST_USED_PRECISION_MS) {
    await auth.sql`UPDATE api_keys SET last_used_at = ${now} WHERE id = ${row.id}`;
  }
  return { userId: row.userId, role: row.role, via: "api_key", scopes: row.scopes };
}
