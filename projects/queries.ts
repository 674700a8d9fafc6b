// Every SQL statement on the projects table, as small named functions: a reader finds all
// of them here, and callers read as what they mean. Each takes `sql` (the pool or a
// transaction) first.
import { AppError, notFound } from "@/core/errors.ts";
import type { Config } from "@/core/config.ts";
import type { Sql, SqlFragment } from "@/infra/db/database.ts";
import {
  afterCursor,
  containsPattern,
  cursorColumn,
  type Page,
  toPage,
} from "@/infra/db/paging.ts";
import { transaction } from "@/infra/db/transaction.ts";
import { isUuid } from "@/core/ids.ts";
import type { Status } from "@/shared/status.ts";
import { type ActivitySource, type ProjectRow, SHORTEST_IDLE_TIMEOUT_MINUTES } from "./rows.ts";

/** The caller's project, or 404: another user's project is answered exactly as a missing one. */
export async function getOwnedProject(sql: Sql, userId: string, id: string): Promise<ProjectRow> {
  if (!isUuid(id)) throw notFound("Project not found");
  const [row] = await sql<ProjectRow[]>`
    SELECT * FROM projects WHERE id = ${id} AND user_id = ${userId}`;
  if (!row) throw notFound("Project not found");
  return row;
}

/** Inserts a project unless the user is at their quota or the host at its capacity. */
export async function insertProjectWithinQuota(
  deps: { sql: Sql; config: Config },
  userId: string,
  values: Record<string, unknown>,
): Promise<ProjectRow> {
  return await transaction(deps.sql, async (tx) => {
    // Locking the user row serializes this user's creates, so two at once cannot both
    // squeeze under the quota.
    const [user] = await tx<{ projectQuota: number | null }[]>`
      SELECT project_quota FROM users WHERE id = ${userId} FOR UPDATE`;
    if (!user) throw notFound("User not found");
    await claimCapacity(tx, deps.config);
    const quota = user.projectQuota ?? deps.config.defaultProjectQuota;
    const [{ count }] = await tx<{ count: number }[]>`
      SELECT count(*)::int AS count FROM projects WHERE user_id = ${userId} AND status <> 'deleting'`;
    if (count >= quota) {
      throw new AppError(
        "quota_exceeded",
        403,
        `You have ${count} of ${quota} projects; delete one to create another`,
      );
    }
    const [row] = await tx<ProjectRow[]>`INSERT INTO projects ${tx(values)} RETURNING *`;
    return row;
  }) as ProjectRow;
}

// ---- Capacity ------------------------------------------------------------------------------

/** States in which a project holds a container (or is about to, or still does). */
export const HOLDS_A_SANDBOX: Status[] = ["creating", "running", "snapshotting", "restoring"];

const CAPACITY_LOCK = 0x706f6d63; // "pomc": one capacity decision at a time, across instances
const RETRY_AFTER_SECONDS = 60;

export const capacityExhausted = (max: number) =>
  new AppError(
    "capacity_exhausted",
    503,
    `This host runs its most sandboxes at once (${max}); try again when one stops`,
    { headers: { "Retry-After": String(RETRY_AFTER_SECONDS) } },
  );

/**
 * Inside the transaction that is about to claim a sandbox (a create, a start): refuses when
 * MAX_RUNNING_SANDBOXES are already claimed. The lock makes concurrent claims take turns, so
 * two cannot both take the last place; it is released when the transaction ends.
 */
export async function claimCapacity(tx: Sql, config: Config): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(${CAPACITY_LOCK})`;
  const [{ count }] = await tx<{ count: number }[]>`
    SELECT count(*)::int AS count FROM projects WHERE status IN ${tx(HOLDS_A_SANDBOX)}`;
  const max = config.isolation.maxRunningSandboxes;
  if (count >= max) throw capacityExhausted(max);
}

// ---- Listing -------------------------------------------------------------------------------

export interface ListQuery {
  status?: Status;
  q?: string;
  limit: number;
  cursor?: string;
}

/** A user's projects, newest first, keyset-paged. */
/** What a list shows of a project: the summary's columns, nothing else (no key material). */
export type ProjectListRow = Pick<
  ProjectRow,
  "id" | "name" | "status" | "createdAt" | "lastActiveAt"
>;

export async function listProjects(
  sql: Sql,
  userId: string,
  query: ListQuery,
): Promise<Page<ProjectListRow>> {
  // Only the columns a list shows: reading and decoding every column of 50 rows was most of
  // a GET /projects (877 us against 273 us for these five).
  const rows = await sql<(ProjectListRow & { cursorUs: string })[]>`
    SELECT id, name, status, created_at, last_active_at, ${cursorColumn(sql)}
    FROM projects
    WHERE user_id = ${userId}
      ${query.status ? sql`AND status = ${query.status}` : sql``}
      ${query.q ? sql`AND name ILIKE ${containsPattern(query.q)}` : sql``}
      ${afterCursor(sql, query.cursor)}
    ORDER BY created_at DESC, id DESC
    LIMIT ${query.limit + 1}`;
  return toPage(rows, query.limit, (row) => row);
}

export type AdminProjectRow = ProjectListRow & { userId: string; ownerEmail: string };

/** Everyone's projects, newest first, with their owner's email, keyset-paged. */
export async function listEveryonesProjects(
  sql: Sql,
  query: { status?: string; userId?: string; limit: number; cursor?: string },
): Promise<Page<AdminProjectRow>> {
  const rows = await sql<(AdminProjectRow & { cursorUs: string })[]>`
    SELECT p.id, p.name, p.status, p.created_at, p.last_active_at, p.user_id,
      u.email AS owner_email, ${cursorColumn(sql, "p")}
    FROM projects p JOIN users u ON u.id = p.user_id
    WHERE TRUE
      ${query.status ? sql`AND p.status = ${query.status}` : sql``}
      ${query.userId ? sql`AND p.user_id = ${query.userId}` : sql``}
      ${afterCursor(sql, query.cursor, "p")}
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT ${query.limit + 1}`;
  return toPage(rows, query.limit, (row) => row);
}

// ---- Activity ------------------------------------------------------------------------------

/** Marks a project as used at `at` (never earlier than it already was). */
export async function touchActivity(
  sql: Sql,
  projectId: string,
  activity: { source: ActivitySource; at: Date },
): Promise<void> {
  await sql`
    UPDATE projects SET last_active_at = greatest(last_active_at, ${activity.at}),
      last_activity_source = ${activity.source}
    WHERE id = ${projectId}`;
}

/** Past its own idle timeout (or the default) at `now`; a timeout of 0 never is. */
export function idlePastTimeout(sql: Sql, defaultMinutes: number, now: Date): SqlFragment {
  return sql`coalesce(idle_timeout_minutes, ${defaultMinutes}) > 0
    AND last_active_at <
      ${now}::timestamptz - make_interval(mins => coalesce(idle_timeout_minutes, ${defaultMinutes}))`;
}

/** Running projects idle past their timeout, longest idle first. */
export function idleRunningProjects(
  sql: Sql,
  defaultMinutes: number,
  now: Date,
  limit: number,
): Promise<ProjectRow[]> {
  // The first bound (the shortest timeout any project can have: a project's own, or the
  // default, which may be shorter) lets the partial index on last_active_at do the work;
  // the second applies each project's own timeout.
  const shortest = defaultMinutes > 0
    ? Math.min(SHORTEST_IDLE_TIMEOUT_MINUTES, defaultMinutes)
    : SHORTEST_IDLE_TIMEOUT_MINUTES;
  const earliest = new Date(now.getTime() - shortest * 60_000);
  return sql<ProjectRow[]>`
    SELECT * FROM projects
    WHERE status = 'running' AND last_active_at < ${earliest}
      AND ${idlePastTimeout(sql, defaultMinutes, now)}
    ORDER BY last_active_at
    LIMIT ${limit}`;
}

// ---- Backups and disk use ------------------------------------------------------------------

/** Records a finished backup; false when the project is being deleted (or gone). */
export async function recordBackup(
  sql: Sql,
  projectId: string,
  backup: { at: Date; sizeBytes: number },
): Promise<boolean> {
  const [kept] = await sql`
    UPDATE projects SET last_backup_at = ${backup.at}, last_backup_size_bytes = ${backup.sizeBytes}
    WHERE id = ${projectId} AND status <> 'deleting'
    RETURNING id`;
  return !!kept;
}

/**
 * Running projects whose last backup (by this job, or at their last stop) and last attempt
 * are older than the interval, claimed atomically so that two instances never back up the
 * same project in the same round. A failed attempt also waits an interval: an engine that
 * fails is not asked again every round.
 */
export async function claimBackupsDue(
  sql: Sql,
  intervalMinutes: number,
  now = new Date(),
  limit = 20,
): Promise<ProjectRow[]> {
  const due = new Date(now.getTime() - intervalMinutes * 60_000);
  return await sql<ProjectRow[]>`
    UPDATE projects SET backup_attempted_at = ${now}
    WHERE id IN (
      SELECT id FROM projects
      WHERE status = 'running'
        AND (backup_attempted_at IS NULL OR backup_attempted_at < ${due})
        AND (last_backup_at IS NULL OR last_backup_at < ${due})
        AND created_at < ${due}
      ORDER BY backup_attempted_at NULLS FIRST LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING *`;
}

/** Records a disk measurement; a part measured as null keeps its previous value. */
export async function recordDiskUse(
  sql: Sql,
  projectId: string,
  used: { workspaceBytes: number | null; rootfsBytes: number | null },
): Promise<ProjectRow | undefined> {
  const [updated] = await sql<ProjectRow[]>`
    UPDATE projects SET
      workspace_used_bytes = coalesce(${used.workspaceBytes}::bigint, workspace_used_bytes),
      rootfs_used_bytes = coalesce(${used.rootfsBytes}::bigint, rootfs_used_bytes),
      disk_measured_at = now()
    WHERE id = ${projectId} RETURNING *`;
  return updated;
}

/** Running projects, the longest unmeasured first. */
export async function runningProjectsByDiskAge(sql: Sql, limit: number): Promise<ProjectRow[]> {
  return await sql<ProjectRow[]>`
    SELECT * FROM projects WHERE status = 'running' ORDER BY disk_measured_at NULLS FIRST
    LIMIT ${limit}`;
}

// ---- Cloud identity ------------------------------------------------------------------------

export async function recordCloudIdentity(
  sql: Sql,
  projectId: string,
  identity: { email: string; sealedKey: string },
): Promise<void> {
  await sql`
    UPDATE projects SET gcp_sa_email = ${identity.email}, gcp_sa_key_encrypted = ${identity.sealedKey}
    WHERE id = ${projectId}`;
}

// ---- Sandbox network slots -----------------------------------------------------------------

/** The project's slot (null: none yet), or undefined when the project is gone. */
export async function sandboxSlotOf(
  sql: Sql,
  projectId: string,
): Promise<{ sandboxSlot: number | null } | undefined> {
  const [row] = await sql<{ sandboxSlot: number | null }[]>`
    SELECT sandbox_slot FROM projects WHERE id = ${projectId}`;
  return row;
}

/** The lowest slot of `0..slots-1` that no project holds and `excluded` does not name. */
export async function firstFreeSandboxSlot(
  sql: Sql,
  slots: number,
  excluded: number[],
): Promise<number | null> {
  const [free] = await sql<{ slot: number }[]>`
    SELECT s AS slot FROM generate_series(0, ${slots - 1}::int) s
    WHERE s <> ALL(${excluded}::int[])
      AND NOT EXISTS (SELECT 1 FROM projects WHERE sandbox_slot = s)
    ORDER BY s LIMIT 1`;
  return free ? free.slot : null;
}

/**
 * Gives the project `slot` if it has none; null when it already had one. Throws the unique
 * violation (23505) when another project took the slot first.
 */
export async function setSandboxSlot(
  sql: Sql,
  projectId: string,
  slot: number,
): Promise<number | null> {
  const [claimed] = await sql<{ sandboxSlot: number }[]>`
    UPDATE projects SET sandbox_slot = ${slot}
    WHERE id = ${projectId} AND sandbox_slot IS NULL RETURNING sandbox_slot`;
  return claimed ? claimed.sandboxSlot : null;
}

export async function releaseSandboxSlot(sql: Sql, projectId: string): Promise<void> {
  await sql`UPDATE projects SET sandbox_slot = NULL WHERE id = ${projectId}`;
}

// ---- Reconciler ----------------------------------------------------------------------------

/** Which of `ids` are projects. */
export async function existingProjectIds(sql: Sql, ids: string[]): Promise<Set<string>> {
  const rows = await sql<{ id: string }[]>`SELECT id FROM projects WHERE id IN ${sql(ids)}`;
  return new Set(rows.map((r) => r.id));
}

export async function runningProjects(sql: Sql): Promise<ProjectRow[]> {
  return await sql<ProjectRow[]>`
    SELECT * FROM projects WHERE status = 'running'`;
}

/** Records the SSH port of a running project (a restart may have changed it). */
export async function recordSshPort(sql: Sql, projectId: string, port: number): Promise<void> {
  await sql`UPDATE projects SET ssh_host_port = ${port}
    WHERE id = ${projectId} AND status = 'running'`;
}

/** Stuck: past the state's deadline (`cutoff`), or its worker instance is no longer alive. */
function stuck(sql: Sql, cutoff: Date, deadBefore: Date): SqlFragment {
  return sql`(
    status_changed_at < ${cutoff}
    OR worker_id IS NULL
    OR NOT EXISTS (SELECT 1 FROM instances
                   WHERE instances.id = projects.worker_id AND heartbeat_at > ${deadBefore}))`;
}

/** Projects stuck in `status`: past `cutoff`, or with no live worker (none beat since `deadBefore`). */
export async function stuckProjects(
  sql: Sql,
  status: Status,
  since: { cutoff: Date; deadBefore: Date },
): Promise<ProjectRow[]> {
  return await sql<ProjectRow[]>`
    SELECT * FROM projects
    WHERE status = ${status} AND ${stuck(sql, since.cutoff, since.deadBefore)}`;
}

/**
 * Makes a stuck project `instanceId`'s work with a fresh deadline, if it is still stuck as
 * `row` was found: of several instances exactly one gets true.
 */
export async function claimStuckProject(
  sql: Sql,
  row: Pick<ProjectRow, "id" | "status">,
  instanceId: string,
  since: { cutoff: Date; deadBefore: Date },
): Promise<boolean> {
  const stillStuck = stuck(sql, since.cutoff, since.deadBefore);
  const claimed = await sql`
    UPDATE projects SET worker_id = ${instanceId}, status_changed_at = now()
    WHERE id = ${row.id} AND status = ${row.status} AND ${stillStuck}
    RETURNING id`;
  return claimed.length === 1;
}

// ---- Terminal ------------------------------------------------------------------------------

/**
 * Stamps a terminal connection if `userId` owns the project, is not disabled and the project
 * is not being deleted (and, for a running project, its activity), in one statement: nothing
 * can change in between. Undefined when any of that fails.
 */
export async function stampTerminalConnection(
  sql: Sql,
  projectId: string,
  userId: string,
): Promise<{ status: Status; containerId: string | null } | undefined> {
  const [row] = await sql<{ status: Status; containerId: string | null }[]>`
    UPDATE projects p SET last_connection_at = now(),
      last_active_at = CASE WHEN p.status = 'running' THEN now() ELSE p.last_active_at END,
      last_activity_source = CASE WHEN p.status = 'running' THEN 'terminal'
        ELSE p.last_activity_source END
    FROM users u
    WHERE p.id = ${projectId} AND p.user_id = ${userId} AND u.id = p.user_id
      AND u.disabled_at IS NULL AND p.status <> 'deleting'
    RETURNING p.status, p.container_id`;
  return row;
}

/**
 * Marks a running project as used now, if its owner is not disabled (and, with `userId`,
 * is that user). False when it is not.
 */
export async function touchTerminalActivity(
  sql: Sql,
  input: { projectId: string; userId?: string; source: string },
): Promise<boolean> {
  const rows = await sql`
    UPDATE projects p SET last_active_at = greatest(p.last_active_at, now()),
      last_activity_source = ${input.source}
    FROM users u
    WHERE p.id = ${input.projectId} AND p.status = 'running' AND u.id = p.user_id
      AND u.disabled_at IS NULL
      ${input.userId ? sql`AND p.user_id = ${input.userId}` : sql``}
    RETURNING p.id`;
  return rows.length > 0;
}

/** A status change of the state machine (projects/states.ts decides which). */
export async function updateStatus(
  sql: Sql,
  projectId: string,
  change: {
    to: Status;
    from: readonly Status[];
    changes: Record<string, unknown>;
    userId?: string;
    andWhere?: SqlFragment;
  },
): Promise<ProjectRow | undefined> {
  const [row] = await sql<ProjectRow[]>`
    UPDATE projects SET ${sql(change.changes)},
      status = ${change.to}, status_changed_at = now()
    WHERE id = ${projectId} AND status IN ${sql(change.from as string[])}
      ${change.userId ? sql`AND user_id = ${change.userId}` : sql``}
      ${change.andWhere ? sql`AND ${change.andWhere}` : sql``}
    RETURNING *`;
  return row;
}

/** A project's status now (undefined when it is gone), as its owner, when given, sees it. */
export async function statusOf(
  sql: Sql,
  projectId: string,
  userId?: string,
): Promise<Status | undefined> {
  const [row] = await sql<{ status: Status }[]>`
    SELECT status FROM projects WHERE id = ${projectId}
      ${userId ? sql`AND user_id = ${userId}` : sql``}`;
  return row?.status;
}

/** The owner's settings; changing them is itself activity (the new timeout counts from now). */
export async function updateSettings(
  sql: Sql,
  projectId: string,
  userId: string,
  changes: Record<string, unknown>,
): Promise<ProjectRow | undefined> {
  const [row] = await sql<ProjectRow[]>`
    UPDATE projects SET ${sql(changes)}, last_active_at = now(), last_activity_source = 'api'
    WHERE id = ${projectId} AND user_id = ${userId}
    RETURNING *`;
  return row;
}

export async function setEgressPolicy(
  sql: Sql,
  projectId: string,
  userId: string,
  policy: { policy: string | null; allowlist: string[] },
): Promise<ProjectRow | undefined> {
  const [row] = await sql<ProjectRow[]>`
    UPDATE projects SET egress_policy = ${policy.policy}, egress_allowlist = ${policy.allowlist}
    WHERE id = ${projectId} AND user_id = ${userId} AND status <> 'deleting'
    RETURNING *`;
  return row;
}

type EgressColumns = Pick<ProjectRow, "id" | "egressPolicy" | "egressAllowlist">;

/** The egress policy of the running project on a sandbox network slot (the proxy asks). */
export async function egressPolicyInSlot(
  sql: Sql,
  slot: number,
): Promise<EgressColumns | undefined> {
  const [row] = await sql<EgressColumns[]>`
    SELECT id, egress_policy, egress_allowlist FROM projects
    WHERE sandbox_slot = ${slot} AND status = 'running'`;
  return row;
}

/** The egress policy of any project but one being deleted (no owner check: the internal API). */
export async function egressPolicyOf(
  sql: Sql,
  projectId: string,
): Promise<EgressColumns | undefined> {
  const [row] = await sql<EgressColumns[]>`
    SELECT id, egress_policy, egress_allowlist FROM projects
    WHERE id = ${projectId} AND status <> 'deleting'`;
  return row;
}

/** A stop's snapshot, recorded before the container goes (see lifecycle/stop.ts). */
export async function recordSnapshot(
  sql: Sql,
  projectId: string,
  snapshot: { image: string; at: Date; size: number | null },
): Promise<void> {
  await sql`
    UPDATE projects SET snapshot_image = ${snapshot.image}, last_snapshot_at = ${snapshot.at},
      snapshot_size_bytes = ${snapshot.size}
    WHERE id = ${projectId} AND status = 'snapshotting'`;
}

export async function runningProjectIdsOf(sql: Sql, userId: string): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    SELECT id FROM projects WHERE user_id = ${userId} AND status = 'running'`;
  return rows.map((r) => r.id);
}

/** A delete that failed: left deleting with no worker, for a retry or the reconciler. */
export async function releaseFailedDelete(sql: Sql, projectId: string, reason: string) {
  await sql`UPDATE projects SET worker_id = NULL, status_reason = ${reason}
    WHERE id = ${projectId} AND status = 'deleting'`;
}

export async function deleteProjectRow(sql: Sql, projectId: string): Promise<void> {
  await sql`DELETE FROM projects WHERE id = ${projectId} AND status = 'deleting'`;
}

/** How many projects a user has (those being deleted do not count) and may have. */
export async function quotaUse(
  sql: Sql,
  userId: string,
): Promise<{ used: number; quota: number | null }> {
  const [row] = await sql<{ used: number; quota: number | null }[]>`
    SELECT
      (SELECT count(*)::int FROM projects WHERE user_id = ${userId} AND status <> 'deleting') AS used,
      (SELECT project_quota FROM users WHERE id = ${userId}) AS quota`;
  return row ?? { used: 0, quota: null };
}
