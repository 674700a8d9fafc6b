import type { Sql } from "./db/database.ts";

export interface AuditEntry {
  /** Dotted name, e.g. "auth.login", "admin.user_disabled", "project.stopped". */
  event: string;
  /** Whom the event is about. */
  userId?: string | null;
  /** Who did it, when not the user themself (an admin, a client). */
  actorId?: string | null;
  projectId?: string | null;
  ip?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

// Same idea as the logger's redaction: a careless caller cannot put a secret into the log.
const secretLooking = /pass(word)?|secret|token|authorization|cookie|private|hash|key$/i;

/** Appends one row to audit_log. Accepts the pool or a transaction (then it commits with it). */
export async function recordAudit(sql: Sql, entry: AuditEntry): Promise<void> {
  await sql`
    INSERT INTO audit_log (event, user_id, actor_id, project_id, ip, request_id, details)
    VALUES (${entry.event}, ${entry.userId ?? null}, ${entry.actorId ?? null},
      ${entry.projectId ?? null}, ${entry.ip ?? null}, ${entry.requestId ?? null},
      ${sql.json(withoutSecrets(entry.details ?? {}) as never)})`;
}

function withoutSecrets(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(details).filter(([k, v]) => !secretLooking.test(k) && v !== undefined),
  );
}
