import { recordAudit } from "@/infra/audit.ts";
import { randomToken } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import { afterCursor, cursorColumn, type Page, toPage } from "@/infra/db/paging.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { AppError, notFound, validationError } from "@/core/errors.ts";
import type { AuthService } from "./service.ts";
import { isUuid } from "@/core/ids.ts";
import { hashToken } from "./tokens.ts";
import type { Actor } from "@/core/actor.ts";

/*
 * Invite codes (REGISTRATION=invite). An administrator makes one; it lets one person sign up,
 * once, before it expires. The code is 256 random bits, base64url, shown only in the answer
 * that makes it; the database keeps its SHA-256, like API keys and client secrets.
 */

/** Recognizable at a glance (and by secret scanners); URL-safe, so it fits a sign-up link. */
export const INVITE_CODE_PREFIX = "pdxinv_";
export const INVITE_DEFAULT_DAYS = 7;
export const INVITE_MIN_DAYS = 1;
export const INVITE_MAX_DAYS = 90;
export const INVITE_NOTE_MAX_LENGTH = 200;
export const INVITE_STATUSES = ["active", "used", "expired", "revoked"] as const;
export type InviteStatus = (typeof INVITE_STATUSES)[number];

const DAY_MS = 24 * 3600 * 1000;

export const registrationClosed = () =>
  new AppError("registration_closed", 403, "Registration is closed on this server");
export const inviteRequired = () =>
  new AppError("invite_required", 403, "Registration needs an invite code (invite_code)");
/** One answer for an unknown, used, expired or revoked code: codes cannot be probed. */
export const inviteInvalid = () =>
  new AppError("invite_invalid", 403, "This invite code is not valid");
export const inviteUsed = () =>
  new AppError("invite_used", 409, "This invite has been used; it cannot be revoked");

interface InviteRow {
  id: string;
  note: string | null;
  createdBy: string | null;
  createdAt: Date;
  expiresAt: Date;
  usedBy: string | null;
  usedByEmail: string | null;
  usedAt: Date | null;
  revokedAt: Date | null;
}

export function inviteStatus(
  row: Pick<InviteRow, "usedAt" | "revokedAt" | "expiresAt">,
  now: Date,
): InviteStatus {
  if (row.usedAt) return "used";
  if (row.revokedAt) return "revoked";
  return row.expiresAt.getTime() <= now.getTime() ? "expired" : "active";
}

/** What administrators see of an invite: everything but the code, which nobody sees again. */
export function inviteView(row: InviteRow, now: Date) {
  return {
    id: row.id,
    status: inviteStatus(row, now),
    note: row.note,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    expires_at: row.expiresAt.toISOString(),
    used_by: row.usedBy,
    used_by_email: row.usedByEmail,
    used_at: row.usedAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
  };
}
export type InviteView = ReturnType<typeof inviteView>;

/**
 * A note's problem, or null when it is fine (after trimming). Control characters and Unicode
 * format characters (Cf: invisible, some reorder the text around them) are refused, so a note
 * reads as what it is on the admin page.
 */
export function inviteNoteProblem(note: string): string | null {
  // A lone surrogate is no text at all (and PostgreSQL's JSON refuses it in the audit log).
  if (!note.isWellFormed()) return "must be valid Unicode text";
  if ([...note.trim()].length > INVITE_NOTE_MAX_LENGTH) {
    return `must be at most ${INVITE_NOTE_MAX_LENGTH} characters`;
  }
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(note)) {
    return "must not contain control characters";
  }
  if (/\p{Cf}/u.test(note)) return "must not contain invisible format characters (Unicode Cf)";
  return null;
}

/** A problem with the lifetime in days, or null. */
export function inviteDaysProblem(days: number): string | null {
  return Number.isInteger(days) && days >= INVITE_MIN_DAYS && days <= INVITE_MAX_DAYS
    ? null
    : `must be a whole number of days from ${INVITE_MIN_DAYS} to ${INVITE_MAX_DAYS}`;
}

/** The sign-up link an administrator can pass on: the dashboard's form, code filled in. */
export const signupUrlOf = (publicUrl: string, code: string) =>
  `${publicUrl}/signup?invite=${encodeURIComponent(code)}`;

/** Makes an invite. The code is in this answer only. */
export async function createInvite(
  auth: AuthService,
  actor: Actor,
  input: { expiresInDays?: number; note?: string | null },
) {
  const days = input.expiresInDays ?? INVITE_DEFAULT_DAYS;
  const daysProblem = inviteDaysProblem(days);
  if (daysProblem) throw validationError([{ path: "expires_in_days", message: daysProblem }]);
  const noteProblem = inviteNoteProblem(input.note ?? "");
  if (noteProblem) throw validationError([{ path: "note", message: noteProblem }]);
  const note = input.note?.trim() || null;
  const code = INVITE_CODE_PREFIX + randomToken(32);
  const now = auth.clock();
  const expiresAt = new Date(now.getTime() + days * DAY_MS);
  const row = await transaction(auth.sql, async (tx) => {
    const [row] = await tx<InviteRow[]>`
      INSERT INTO invites (code_hash, created_by, created_at, expires_at, note)
      VALUES (${await hashToken(code)}, ${actor.userId}, ${now}, ${expiresAt}, ${note})
      RETURNING id, note, created_by, created_at, expires_at, NULL::uuid AS used_by,
        NULL::text AS used_by_email, used_at, revoked_at`;
    await recordAudit(tx, {
      event: "admin.invite_created",
      actorId: actor.userId,
      ip: actor.ip,
      requestId: actor.requestId,
      details: { invite_id: row.id, expires_at: expiresAt.toISOString(), note },
    });
    return row;
  });
  return {
    ...inviteView(row, now),
    code,
    signup_url: signupUrlOf(auth.config.publicUrl, code),
  };
}

/** Every invite, newest first, with its status; never a code (only its hash is kept). */
export async function listInvites(
  auth: AuthService,
  query: { status?: InviteStatus; limit: number; cursor?: string },
): Promise<Page<InviteView>> {
  const { sql } = auth;
  const now = auth.clock();
  const byStatus = {
    active: sql`AND i.used_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > ${now}`,
    used: sql`AND i.used_at IS NOT NULL`,
    revoked: sql`AND i.revoked_at IS NOT NULL`,
    expired: sql`AND i.used_at IS NULL AND i.revoked_at IS NULL AND i.expires_at <= ${now}`,
  };
  const rows = await sql<(InviteRow & { cursorUs: string })[]>`
    SELECT i.id, i.note, i.created_by, i.created_at, i.expires_at, i.used_by,
      u.email AS used_by_email, i.used_at, i.revoked_at, ${cursorColumn(sql, "i")}
    FROM invites i LEFT JOIN users u ON u.id = i.used_by
    WHERE TRUE
      ${query.status ? byStatus[query.status] : sql``}
      ${afterCursor(sql, query.cursor, "i")}
    ORDER BY i.created_at DESC, i.id DESC
    LIMIT ${query.limit + 1}`;
  return toPage(rows, query.limit, (r) => inviteView(r, now));
}

/**
 * Revokes an unused invite (again: no change). A used one is 409: revoking it would change
 * nothing, and saying "revoked" would hide that someone signed up with it.
 */
export async function revokeInvite(
  auth: AuthService,
  inviteId: string,
  actor: Actor,
): Promise<InviteView> {
  if (!isUuid(inviteId)) throw notFound("No such invite");
  return await transaction(auth.sql, async (tx) => {
    const now = auth.clock();
    // The row lock orders this against a registration consuming the same invite.
    const [row] = await tx<InviteRow[]>`
      SELECT id, note, created_by, created_at, expires_at, used_by, NULL::text AS used_by_email,
        used_at, revoked_at
      FROM invites WHERE id = ${inviteId} FOR UPDATE`;
    if (!row) throw notFound("No such invite");
    if (row.usedAt) throw inviteUsed();
    if (row.revokedAt) return inviteView(row, now);
    const [revoked] = await tx<InviteRow[]>`
      UPDATE invites SET revoked_at = ${now} WHERE id = ${inviteId}
      RETURNING id, note, created_by, created_at, expires_at, used_by,
        NULL::text AS used_by_email, used_at, revoked_at`;
    await recordAudit(tx, {
      event: "admin.invite_revoked",
      actorId: actor.userId,
      ip: actor.ip,
      requestId: actor.requestId,
      details: { invite_id: inviteId },
    });
    return inviteView(revoked, now);
  });
}

/** The id of the invite a code belongs to, whatever its status (for the audit log). */
export async function inviteIdOf(sql: Sql, code: string): Promise<string | null> {
  const [row] = await sql<{ id: string }[]>`
    SELECT id FROM invites WHERE code_hash = ${await hashToken(code)}`;
  return row?.id ?? null;
}

/** Whether a code can be used now (a check ahead of the hash; consumeInvite decides). */
export async function isUsableInvite(auth: AuthService, code: string): Promise<boolean> {
  const [row] = await auth.sql`
    SELECT 1 FROM invites
    WHERE code_hash = ${await hashToken(code)}
      AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ${auth.clock()}`;
  return !!row;
}

/**
 * Marks the invite used by `userId`, inside the registration's transaction. The conditional
 * UPDATE is the decision: of two registrations racing on one code, the second waits on the
 * row lock, then finds it used and gets null (its transaction rolls back, user and all).
 */
export async function consumeInvite(
  tx: Sql,
  code: string,
  userId: string,
  now: Date,
): Promise<string | null> {
  const [row] = await tx<{ id: string }[]>`
    UPDATE invites SET used_by = ${userId}, used_at = ${now}
    WHERE code_hash = ${await hashToken(code)}
      AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ${now}
    RETURNING id`;
  return row?.id ?? null;
}
