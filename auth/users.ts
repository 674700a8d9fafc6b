import type { Actor } from "@/core/actor.ts";
import { recordAudit } from "@/infra/audit.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError, invalidState, notFound, validationError } from "@/core/errors.ts";
import {
  consumeInvite,
  inviteIdOf,
  inviteInvalid,
  inviteRequired,
  isUsableInvite,
  registrationClosed,
} from "./invites.ts";
import { passwordLengthProblem } from "./passwords.ts";
import type { RequestMeta } from "@/core/actor.ts";
import type { AuthService } from "./service.ts";
import { revokeAllSessions } from "./sessions.ts";
import { transaction } from "@/infra/db/transaction.ts";

const INITIAL_ADMIN_LOCK = 0x61646d6e; // "admn"

export interface UserRow {
  id: string;
  email: string;
  role: "user" | "admin";
  passwordHash: string;
  disabledAt: Date | null;
  createdAt: Date;
}

/** The public shape of a user (never the hash). */
export function userView(u: Pick<UserRow, "id" | "email" | "role" | "createdAt" | "disabledAt">) {
  return {
    id: u.id,
    email: u.email,
    role: u.role,
    created_at: u.createdAt.toISOString(),
    disabled_at: u.disabledAt?.toISOString() ?? null,
  };
}

export const emailTaken = () =>
  new AppError("email_taken", 409, "An account with this email already exists");

/** Emails compare case-insensitively (the unique index is on lower(email)). */
export async function findUserByEmail(sql: Sql, email: string): Promise<UserRow | null> {
  const [row] = await sql<UserRow[]>`
    SELECT id, email, role, password_hash, disabled_at, created_at FROM users
    WHERE lower(email) = lower(${email.trim()})`;
  return row ?? null;
}

export async function findUserById(sql: Sql, id: string): Promise<UserRow | null> {
  const [row] = await sql<UserRow[]>`
    SELECT id, email, role, password_hash, disabled_at, created_at FROM users WHERE id = ${id}`;
  return row ?? null;
}

/**
 * Signs a user up, as REGISTRATION allows: open (anyone; an invite code is ignored), invite
 * (only with a usable invite code, consumed in the same transaction as the insert) or closed
 * (nobody). In invite mode the code is checked before the email, so whether an email has an
 * account is not told to someone without a code.
 */
export async function registerUser(
  auth: AuthService,
  input: { email: string; password: string; inviteCode?: string },
  meta: RequestMeta,
): Promise<{ userId: string }> {
  const mode = auth.config.registration;
  if (mode === "closed") throw registrationClosed();
  await auth.limiter.hit(auth.rules.registerPerIp, meta.ip);
  await auth.limiter.hit(auth.rules.registerPerEmail, input.email.trim().toLowerCase());
  const problem = passwordLengthProblem(input.password);
  if (problem) throw validationError([{ path: "password", message: problem }]);
  const code = mode === "invite" ? input.inviteCode?.trim() || null : null;
  const refuse = async (error: AppError) => {
    await recordAudit(auth.sql, {
      event: "auth.register_refused",
      ip: meta.ip,
      requestId: meta.requestId,
      details: { reason: error.code, invite_id: code ? await inviteIdOf(auth.sql, code) : null },
    });
    return error;
  };
  if (mode === "invite") {
    if (!code) throw await refuse(inviteRequired());
    if (!await isUsableInvite(auth, code)) throw await refuse(inviteInvalid());
  }
  // Checked first to spare a hash; the insert below still settles a race.
  if (await findUserByEmail(auth.sql, input.email)) throw emailTaken();
  const passwordHash = await auth.passwords.hash(input.password);
  try {
    return await transaction(auth.sql, async (tx) => {
      const userId = await insertUserRow(tx, input.email, passwordHash, "user");
      if (!userId) throw emailTaken();
      const inviteId = code ? await consumeInvite(tx, code, userId, auth.clock()) : null;
      // Used, revoked or expired since the check above: no account either (rolled back).
      if (code && !inviteId) throw inviteInvalid();
      await recordAudit(tx, {
        event: "auth.register",
        userId,
        ip: meta.ip,
        requestId: meta.requestId,
        details: inviteId ? { invite_id: inviteId } : {},
      });
      return { userId };
    });
  } catch (err) {
    if (err instanceof AppError && err.code === "invite_invalid") throw await refuse(err);
    throw err;
  }
}

async function insertUserRow(
  sql: Sql,
  email: string,
  passwordHash: string,
  role: "user" | "admin",
): Promise<string | null> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO users (email, password_hash, role) VALUES (${email.trim()}, ${passwordHash}, ${role})
    ON CONFLICT DO NOTHING
    RETURNING id`;
  return row?.id ?? null;
}

async function insertUser(
  auth: AuthService,
  email: string,
  password: string,
  role: "user" | "admin",
  sql: Sql = auth.sql,
): Promise<string | null> {
  return await insertUserRow(sql, email, await auth.passwords.hash(password), role);
}

export type InitialAdminOutcome = "created" | "admin_exists" | "email_taken" | "not_configured";

/**
 * Creates the first administrator from INITIAL_ADMIN_EMAIL / _PASSWORD when no admin
 * exists. Safe to call on every start and from several instances at once (advisory lock).
 * An existing non-admin account with that email is never promoted: whoever registered it
 * first would otherwise become admin with their own password.
 */
export async function ensureInitialAdmin(
  auth: AuthService,
  admin: { email: string; password: string } | undefined,
): Promise<InitialAdminOutcome> {
  if (!admin) return "not_configured";
  const problem = passwordLengthProblem(admin.password);
  if (problem) throw new Error(`INITIAL_ADMIN_PASSWORD ${problem}`);
  const outcome = await transaction(auth.sql, async (tx): Promise<InitialAdminOutcome> => {
    await tx`SELECT pg_advisory_xact_lock(${INITIAL_ADMIN_LOCK})`;
    const [anyAdmin] = await tx`SELECT 1 FROM users WHERE role = 'admin' LIMIT 1`;
    if (anyAdmin) return "admin_exists";
    if (await findUserByEmail(tx, admin.email)) return "email_taken";
    const userId = await insertUser(auth, admin.email, admin.password, "admin", tx);
    await recordAudit(tx, { event: "admin.initial_admin_created", userId });
    return "created";
  });
  if (outcome === "created") auth.log.info("initial admin created", { email: admin.email });
  if (outcome === "email_taken") {
    auth.log.warn("INITIAL_ADMIN_EMAIL belongs to an existing non-admin account; no admin made", {
      email: admin.email,
    });
  }
  return outcome;
}

/**
 * Disabling takes effect at once: every session is revoked (access tokens die with them
 * on the next request), personal API keys are revoked for good, and M2M client tokens
 * acting for the user fail while the user stays disabled.
 */
export async function setUserDisabled(
  auth: AuthService,
  userId: string,
  disabled: boolean,
  actor: Actor,
) {
  if (disabled && userId === actor.userId) {
    throw invalidState("Administrators cannot disable their own account");
  }
  const view = await transaction(auth.sql, async (tx) => {
    const now = auth.clock();
    const [user] = await tx<(UserRow & { projectQuota: number | null })[]>`
      UPDATE users SET
        disabled_at = ${disabled ? tx`coalesce(disabled_at, ${now})` : null},
        updated_at = ${now}
      WHERE id = ${userId}
      RETURNING id, email, role, password_hash, disabled_at, created_at, project_quota`;
    if (!user) throw notFound("No such user");
    const details: Record<string, unknown> = {};
    if (disabled) {
      details.sessions_revoked = await revokeAllSessions(tx, userId, "user_disabled", now);
      const keys = await tx`
        UPDATE api_keys SET revoked_at = ${now} WHERE user_id = ${userId} AND revoked_at IS NULL
        RETURNING id`;
      details.api_keys_revoked = keys.length;
    }
    await recordAudit(tx, {
      event: disabled ? "admin.user_disabled" : "admin.user_enabled",
      userId,
      actorId: actor.userId,
      ip: actor.ip,
      requestId: actor.requestId,
      details,
    });
    return adminUserView(user);
  });
  // At once on this instance; the others hear it from the database (live-credentials.ts).
  auth.live.changed(`user:${userId}`);
  return view;
}

/** What administrators see of a user: the public shape plus the quota override. */
export function adminUserView(u: Parameters<typeof userView>[0] & { projectQuota: number | null }) {
  return { ...userView(u), project_quota: u.projectQuota };
}
