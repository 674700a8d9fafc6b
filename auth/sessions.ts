import type { Sql } from "@/infra/db/database.ts";
import type { RequestMeta } from "@/core/actor.ts";
import type { AuthService } from "./service.ts";
import { hashToken, newRefreshToken, successorOf } from "./tokens.ts";
import { transaction } from "@/infra/db/transaction.ts";

export type SessionKind = "api" | "browser";

export interface OpenedSession {
  sessionId: string;
  userId: string;
  refreshToken: string;
  /** Absolute: refreshing never moves it. */
  expiresAt: Date;
}

/** A login: one session row and its first refresh token, in one statement. */
export async function openSession(
  auth: AuthService,
  { userId, sessionId, kind }: { userId: string; sessionId: string; kind: SessionKind },
  meta: RequestMeta,
  sql: Sql = auth.sql,
): Promise<OpenedSession> {
  const now = auth.clock();
  const expiresAt = new Date(now.getTime() + auth.config.jwt.refreshTtlDays * 86400_000);
  const refreshToken = newRefreshToken();
  await sql`
    WITH s AS (
      INSERT INTO sessions (id, user_id, kind, ip, user_agent, created_at, last_used_at,
        expires_at)
      VALUES (${sessionId}, ${userId}, ${kind}, ${meta.ip},
        ${meta.userAgent?.slice(0, 512) ?? null}, ${now}, ${now}, ${expiresAt})
      RETURNING id
    )
    INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at)
    SELECT id, ${await hashToken(refreshToken)}, ${now}, ${expiresAt} FROM s`;
  return { sessionId, userId, refreshToken, expiresAt };
}

/**
 * What presenting a refresh token led to:
 * - rotated: it was live; here is its successor.
 * - raced: it was rotated by a request that was still in flight when this one arrived
 *   (two tabs, a client's parallel calls), within the grace window; here is the SAME
 *   successor, so the session neither forks nor dies.
 * - replayed: rotated, presented again after that rotation but within the grace window:
 *   refused, and the session is left alone (too soon to call it theft).
 * - reused: rotated longer ago than the grace window: presumed stolen; the whole session
 *   has just been revoked.
 * - invalid: unknown, expired, or its session is revoked, expired or its user disabled.
 */
export type RotationOutcome =
  | { kind: "rotated" | "raced"; session: OpenedSession }
  | { kind: "replayed" | "reused"; sessionId: string; userId: string }
  | { kind: "invalid" };

interface PresentedRow {
  id: string;
  sessionId: string;
  userId: string;
  expiresAt: Date;
  rotatedAt: Date | null;
  replacedBy: string | null;
  sessionExpiresAt: Date;
  sessionRevokedAt: Date | null;
  userDisabledAt: Date | null;
}

/**
 * Whose live session a refresh token belongs to, for the per-account limit. A dead token
 * (revoked, expired, of a logged-out device) counts only against its sender's IP, so that
 * one that leaked cannot be used to hold its owner's other sessions at the limit.
 */
export async function ownerOfRefreshToken(
  sql: Sql,
  presented: string,
  now: Date,
): Promise<string | null> {
  const [row] = await sql<{ userId: string }[]>`
    SELECT s.user_id FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
    WHERE rt.token_hash = ${await hashToken(presented)}
      AND rt.expires_at > ${now} AND s.expires_at > ${now} AND s.revoked_at IS NULL`;
  return row?.userId ?? null;
}

/**
 * Rotation under SELECT ... FOR UPDATE of the presented token's row: concurrent refreshes
 * of one token serialize there, the first rotates, the others see what it did.
 * `receivedAt` is when the request arrived: arriving before the rotation is what makes
 * a request a racer rather than a replay.
 */
export async function rotateRefreshToken(
  auth: AuthService,
  presented: string,
  receivedAt: Date,
): Promise<RotationOutcome> {
  const graceMs = auth.config.jwt.refreshReuseGraceSeconds * 1000;
  const presentedHash = await hashToken(presented);
  const successor = await successorOf(auth.successorKey, presented);
  const outcome = await transaction(auth.sql, async (tx): Promise<RotationOutcome> => {
    const now = auth.clock();
    const [row] = await tx<PresentedRow[]>`
      SELECT rt.id, rt.session_id, s.user_id, rt.expires_at, rt.rotated_at, rt.replaced_by,
        s.expires_at AS session_expires_at, s.revoked_at AS session_revoked_at,
        u.disabled_at AS user_disabled_at
      FROM refresh_tokens rt
        JOIN sessions s ON s.id = rt.session_id
        JOIN users u ON u.id = s.user_id
      WHERE rt.token_hash = ${presentedHash}
      FOR UPDATE OF rt`;
    if (!row || row.sessionRevokedAt || row.userDisabledAt) return { kind: "invalid" };
    if (row.sessionExpiresAt <= now || row.expiresAt <= now) return { kind: "invalid" };
    const session = {
      sessionId: row.sessionId,
      userId: row.userId,
      refreshToken: successor,
      expiresAt: row.sessionExpiresAt,
    };

    if (row.rotatedAt === null) {
      await tx`
        WITH next AS (
          INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at)
          VALUES (${row.sessionId}, ${await hashToken(successor)}, ${now}, ${row.sessionExpiresAt})
          RETURNING id
        ), used AS (
          UPDATE sessions SET last_used_at = ${now} WHERE id = ${row.sessionId}
        )
        UPDATE refresh_tokens SET rotated_at = ${now}, replaced_by = (SELECT id FROM next)
        WHERE id = ${row.id}`;
      return { kind: "rotated", session };
    }

    const ids = { sessionId: row.sessionId, userId: row.userId };
    if (now.getTime() - row.rotatedAt.getTime() <= graceMs) {
      const racedTheRotation = receivedAt.getTime() < row.rotatedAt.getTime();
      if (racedTheRotation && await isLiveTip(tx, row.replacedBy)) {
        return { kind: "raced", session };
      }
      return { kind: "replayed", ...ids };
    }
    await revokeSession(tx, row.sessionId, "refresh_token_reuse", now);
    return { kind: "reused", ...ids };
  });
  // At once on this instance; the others hear it from the database (live-credentials.ts).
  if (outcome.kind === "reused") auth.live.changed(`session:${outcome.sessionId}`);
  return outcome;
}

/** The successor has not been rotated in turn: handing it out again forks nothing. */
async function isLiveTip(sql: Sql, successorId: string | null): Promise<boolean> {
  if (!successorId) return false;
  const [next] = await sql<{ rotatedAt: Date | null }[]>`
    SELECT rotated_at FROM refresh_tokens WHERE id = ${successorId}`;
  return next !== undefined && next.rotatedAt === null;
}

export async function revokeSession(
  sql: Sql,
  sessionId: string,
  reason: string,
  now: Date,
): Promise<boolean> {
  const rows = await sql`
    UPDATE sessions SET revoked_at = ${now}, revoked_reason = ${reason}
    WHERE id = ${sessionId} AND revoked_at IS NULL
    RETURNING id`;
  return rows.length > 0;
}

/** Any token of the session will do (even a rotated one): revoking is always safe. */
export async function revokeSessionOfRefreshToken(
  auth: AuthService,
  refreshToken: string,
  reason: string,
): Promise<{ sessionId: string; userId: string } | null> {
  const tokenHash = await hashToken(refreshToken);
  const [row] = await auth.sql<{ id: string; userId: string }[]>`
    UPDATE sessions SET revoked_at = ${auth.clock()}, revoked_reason = ${reason}
    WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ${tokenHash})
      AND revoked_at IS NULL
    RETURNING id, user_id`;
  return row ? { sessionId: row.id, userId: row.userId } : null;
}

export async function revokeAllSessions(
  sql: Sql,
  userId: string,
  reason: string,
  now: Date,
): Promise<number> {
  const rows = await sql`
    UPDATE sessions SET revoked_at = ${now}, revoked_reason = ${reason}
    WHERE user_id = ${userId} AND revoked_at IS NULL
    RETURNING id`;
  return rows.length;
}

export interface LiveSession {
  userId: string;
  role: "user" | "admin";
  expiresAt: Date;
}

/**
 * The per-request check behind every access token: one primary-key lookup that answers
 * "is this login still alive and its user still enabled". Logout and disable take effect
 * on the next request because of it.
 */
export async function findLiveSession(
  sql: Sql,
  sessionId: string,
  userId: string,
  now: Date,
): Promise<LiveSession | null> {
  const [row] = await sql<LiveSession[]>`
    SELECT s.user_id, u.role, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.id = ${sessionId} AND s.user_id = ${userId}
      AND s.revoked_at IS NULL AND s.expires_at > ${now} AND u.disabled_at IS NULL`;
  return row ?? null;
}
