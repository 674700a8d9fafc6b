import type { RateRule } from "@/auth/rate-limit.ts";
import type { Config } from "@/core/config.ts";
import { randomToken, sha256Hex } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import { isUuid } from "@/core/ids.ts";

/** Tickets carry a prefix so /internal/validate tells them from access tokens at a glance. */
export const TICKET_PREFIX = "tkt_";
export const DEFAULT_TICKET_TTL_SECONDS = 60;

const ticketShape = /^tkt_[A-Za-z0-9_-]{43}$/;

/** POST /projects/{id}/terminal-ticket, per user (API.md: 30 a minute by default). */
export const terminalTicketRule = (config: Pick<Config, "rateLimits">): RateRule => ({
  bucket: "terminal-tickets:user",
  limit: config.rateLimits.terminalTicketsPerMinute,
  windowSeconds: 60,
});

export const looksLikeTicket = (token: string) => token.startsWith(TICKET_PREFIX);

/**
 * A single-use ticket for one WebSocket connection to one project. It goes into a URL
 * (browsers cannot set headers on a WebSocket), so it is short-lived and single-use, and
 * only its SHA-256 is stored: a leaked database row or log line cannot open a terminal.
 * `sessionId` binds it to the login that asked for it, so logging out kills it too.
 */
export async function issueTerminalTicket(
  sql: Sql,
  opts: { userId: string; projectId: string; sessionId?: string; ttlSeconds?: number },
): Promise<{ ticket: string; expiresIn: number }> {
  const ttl = opts.ttlSeconds ?? DEFAULT_TICKET_TTL_SECONDS;
  const ticket = TICKET_PREFIX + randomToken(32);
  await sql`
    INSERT INTO terminal_tickets (token_hash, user_id, project_id, session_id, expires_at)
    VALUES (${await sha256Hex(ticket)}, ${opts.userId}, ${opts.projectId},
      ${opts.sessionId ?? null}, now() + make_interval(secs => ${ttl}))`;
  // Pruning rides along with issuing: spent or expired tickets are worthless after a while.
  await sql`DELETE FROM terminal_tickets WHERE expires_at < now() - interval '1 hour'`;
  return { ticket, expiresIn: ttl };
}

/**
 * Spends a ticket: one atomic UPDATE, so of two connections racing with the same ticket
 * exactly one wins. Null for unknown, spent, expired or another project's tickets (the
 * caller answers all of them alike). Whether the user and session are still alive is
 * checked by the caller, after the ticket is spent either way.
 */
export async function redeemTerminalTicket(
  sql: Sql,
  ticket: string,
  projectId: string,
): Promise<{ userId: string; sessionId: string | null } | null> {
  if (!ticketShape.test(ticket) || !isUuid(projectId)) return null;
  const [row] = await sql<{ userId: string; sessionId: string | null }[]>`
    UPDATE terminal_tickets SET used_at = now()
    WHERE token_hash = ${await sha256Hex(ticket)} AND used_at IS NULL
      AND expires_at > now() AND project_id = ${projectId}
    RETURNING user_id, session_id`;
  return row ?? null;
}
