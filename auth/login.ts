import { recordAudit } from "@/infra/audit.ts";
import { AppError, rateLimited, unauthorized } from "@/core/errors.ts";
import { estimate, isOver, type RateRule, retryAfterSeconds } from "./rate-limit.ts";
import type { RequestMeta } from "@/core/actor.ts";
import type { AuthService } from "./service.ts";
import {
  type OpenedSession,
  openSession,
  ownerOfRefreshToken,
  revokeAllSessions,
  revokeSessionOfRefreshToken,
  rotateRefreshToken,
  type SessionKind,
} from "./sessions.ts";
import { signAccessToken } from "./tokens.ts";
import { findUserByEmail } from "./users.ts";
import { transaction } from "@/infra/db/transaction.ts";

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  sessionId: string;
  sessionExpiresAt: Date;
}

/** One body for a wrong password and an unknown email alike. */
export const invalidCredentials = () =>
  new AppError("invalid_credentials", 401, "Invalid email or password");

const invalidRefreshToken = () => unauthorized("Invalid, expired or revoked refresh token");

/** The per-account back-off: the first attempt past the limit waits this long... */
export const LOGIN_DELAY_STEP_MS = 1_000;
/** ...each further one a step more, up to this. */
export const LOGIN_DELAY_MAX_MS = 5_000;

/**
 * How long an attempt on an account waits before its password is checked, given the
 * account's failures (from every IP) before it: nothing within the limit, then 1 s more per
 * failure past it, at most 5 s.
 */
export function loginDelayMs(rule: RateRule, failuresBefore: number): number {
  if (failuresBefore < rule.limit) return 0;
  const past = Math.floor(failuresBefore - rule.limit) + 1;
  return Math.min(LOGIN_DELAY_MAX_MS, past * LOGIN_DELAY_STEP_MS);
}

/**
 * Email + password to a new session. Three limits, all settled before any hashing (a
 * refused attempt costs no argon2id):
 * - per IP, every attempt: past it, 429;
 * - per account and IP, failures: past it, 429 — for that IP only, so that nobody can lock
 *   an owner out by failing on purpose;
 * - per account, failures from every IP: past it, each attempt waits (1 s, growing to 5 s)
 *   and then goes on; the right password still gets in.
 * The account is the normalised email whether or not it exists, and exactly one
 * verification runs either way: an unknown email answers like a wrong password, in the
 * same time, waits included.
 */
export async function login(
  auth: AuthService,
  input: { email: string; password: string },
  meta: RequestMeta,
  kind: SessionKind = "api",
): Promise<TokenPair> {
  const account = input.email.trim().toLowerCase();
  const accountAtIp = `${account}|${meta.ip}`; // an IP holds no "|": one key per pair
  // Every attempt is counted on all three before its password is checked, in one statement
  // beside the user's lookup, so parallel guesses cannot all slip past the limits. An
  // attempt the IP's limit refuses counts against neither account limit, and one the
  // account-and-IP limit refuses not against the account's: refusals never extend a
  // back-off. A success takes its counts back.
  const now = auth.clock();
  const perIp = { rule: auth.rules.loginPerIp, key: meta.ip };
  const perAccountIp = { rule: auth.rules.loginFailuresPerAccountIp, key: accountAtIp };
  const perAccount = { rule: auth.rules.loginFailuresPerAccount, key: account };
  const [[ipCounts, accountIpCounts, accountCounts], user] = await Promise.all([
    auth.limiter.countAll([perIp, perAccountIp, perAccount], now),
    findUserByEmail(auth.sql, account),
  ]);
  const refusal = isOver(perIp.rule, ipCounts)
    ? { rule: perIp.rule, counts: ipCounts }
    : isOver(perAccountIp.rule, accountIpCounts)
    ? { rule: perAccountIp.rule, counts: accountIpCounts }
    : null;
  if (refusal) {
    await auth.limiter.uncount([perAccountIp, perAccount], now);
    throw rateLimited(retryAfterSeconds(refusal.rule, refusal.counts, 1));
  }
  const failuresBefore = Math.max(0, estimate(perAccount.rule, accountCounts) - 1);
  const delayMs = loginDelayMs(auth.rules.loginFailuresPerAccount, failuresBefore);
  if (delayMs > 0) await auth.sleep(delayMs);
  const passwordOk = user
    ? await auth.passwords.verify(user.passwordHash, input.password)
    : await auth.passwords.verifyDummy(input.password);
  if (!user || !passwordOk || user.disabledAt) {
    await recordAudit(auth.sql, {
      event: "auth.login_failed",
      userId: user?.id,
      ip: meta.ip,
      requestId: meta.requestId,
      details: {
        email: account,
        reason: !user ? "unknown_email" : !passwordOk ? "wrong_password" : "user_disabled",
      },
    });
    throw invalidCredentials();
  }

  if (auth.passwords.needsRehash(user.passwordHash)) {
    const upgraded = await auth.passwords.hash(input.password);
    await auth.sql`UPDATE users SET password_hash = ${upgraded} WHERE id = ${user.id}`;
  }
  // The session id is chosen here so the token can be signed while the session is stored;
  // the session row, its audit row and the limits' bookkeeping share one transaction (one
  // commit to wait for): this IP's failures on the account are forgotten (the other IPs'
  // still count), and this attempt's count on the account is taken back.
  const sessionId = crypto.randomUUID();
  const [session, access] = await Promise.all([
    transaction(auth.sql, async (tx) => {
      await auth.limiter.reset(perAccountIp.rule, perAccountIp.key, tx);
      await auth.limiter.uncount([perAccount], now, tx);
      const opened = await openSession(auth, { userId: user.id, sessionId, kind }, meta, tx);
      await recordAudit(tx, {
        event: "auth.login",
        userId: user.id,
        ip: meta.ip,
        requestId: meta.requestId,
        details: { session_id: sessionId, kind },
      });
      return opened;
    }),
    signAccessToken(auth.tokens, { userId: user.id, sessionId }),
  ]);
  return tokenPair(session, access);
}

/** Rotation; see rotateRefreshToken for what each outcome means. */
export async function refreshSession(
  auth: AuthService,
  refreshToken: string,
  meta: RequestMeta & { receivedAt?: Date },
): Promise<TokenPair> {
  const receivedAt = meta.receivedAt ?? auth.clock();
  await auth.limiter.hit(auth.rules.refreshPerIp, meta.ip);
  // Counted before the rotation: a refused refresh must leave the token usable.
  const owner = await ownerOfRefreshToken(auth.sql, refreshToken, auth.clock());
  if (owner) await auth.limiter.hit(auth.rules.refreshPerAccount, owner);
  const outcome = await rotateRefreshToken(auth, refreshToken, receivedAt);
  const audit = { ip: meta.ip, requestId: meta.requestId };
  switch (outcome.kind) {
    case "rotated":
    case "raced":
      await recordAudit(auth.sql, {
        event: "auth.refresh",
        userId: outcome.session.userId,
        ...audit,
        details: { session_id: outcome.session.sessionId, raced: outcome.kind === "raced" },
      });
      return await withAccessToken(auth, outcome.session);
    case "replayed":
    case "reused":
      await recordAudit(auth.sql, {
        event: "auth.refresh_reuse_detected",
        userId: outcome.userId,
        ...audit,
        details: { session_id: outcome.sessionId, session_revoked: outcome.kind === "reused" },
      });
      if (outcome.kind === "reused") {
        auth.log.warn("refresh token reuse: session revoked", {
          session_id: outcome.sessionId,
          request_id: meta.requestId,
        });
      }
      throw invalidRefreshToken();
    case "invalid":
      throw invalidRefreshToken();
  }
}

/** Revokes the session the token belongs to. Unknown tokens are ignored (nothing to say). */
export async function logout(
  auth: AuthService,
  refreshToken: string,
  meta: RequestMeta,
): Promise<void> {
  const revoked = await revokeSessionOfRefreshToken(auth, refreshToken, "logout");
  if (!revoked) return;
  // At once on this instance; the others hear it from the database (live-credentials.ts).
  auth.live.changed(`session:${revoked.sessionId}`);
  await recordAudit(auth.sql, {
    event: "auth.logout",
    userId: revoked.userId,
    ip: meta.ip,
    requestId: meta.requestId,
    details: { session_id: revoked.sessionId },
  });
}

export async function logoutEverywhere(
  auth: AuthService,
  userId: string,
  meta: RequestMeta,
): Promise<void> {
  const count = await revokeAllSessions(auth.sql, userId, "logout_all", auth.clock());
  auth.live.changed(`user:${userId}`);
  await recordAudit(auth.sql, {
    event: "auth.logout_all",
    userId,
    ip: meta.ip,
    requestId: meta.requestId,
    details: { sessions_revoked: count },
  });
}

async function withAccessToken(auth: AuthService, session: OpenedSession): Promise<TokenPair> {
  const access = await signAccessToken(auth.tokens, {
    userId: session.userId,
    sessionId: session.sessionId,
  });
  return tokenPair(session, access);
}

function tokenPair(
  session: OpenedSession,
  access: { token: string; expiresIn: number },
): TokenPair {
  return {
    accessToken: access.token,
    refreshToken: session.refreshToken,
    expiresIn: access.expiresIn,
    sessionId: session.sessionId,
    sessionExpiresAt: session.expiresAt,
  };
}
