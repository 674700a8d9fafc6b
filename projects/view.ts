import type { Config } from "@/core/config.ts";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { ProjectSummary } from "@/shared/project.ts";
import { autoStopAt, idleTimeoutOf } from "./activity.ts";
import { effectivePolicy } from "./egress.ts";
import type { ProjectRow } from "./rows.ts";
import type { ProjectListRow } from "./queries.ts";

/**
 * The project as API.md describes it (snake_case, ISO times, SSH details only while running).
 * The private key is a root shell in the sandbox: only for callers that may change the
 * project (login sessions, and credentials with projects:write).
 */
export async function projectView(
  row: ProjectRow,
  config: Config,
  secrets: SecretBox,
  opts: { privateKey: boolean },
) {
  return {
    ...projectFacts(row, config),
    // Overwrites the null in place, so the key keeps its place in the JSON.
    ssh_private_key: row.sshPrivateKeyEncrypted && opts.privateKey
      ? await secrets.open(row.sshPrivateKeyEncrypted, sshKeyContext(row.id))
      : null,
  };
}

/**
 * The project as API.md describes it, but never with its private key: what the API answers
 * once the key is added, and what the dashboard's project page starts from.
 */
export function projectFacts(row: ProjectRow, config: Config) {
  const running = row.status === "running";
  return {
    ...projectSummary(row),
    status_reason: row.statusReason,
    terminal_url: running ? `${config.terminal.publicUrl}/terminal/${row.id}` : null,
    ssh_host: running ? config.engine.sshHost : null,
    ssh_port: running ? row.sshHostPort : null,
    ssh_user: "agent",
    ssh_public_key: row.sshPublicKey,
    ssh_private_key: null,
    last_backup_at: iso(row.lastBackupAt),
    last_snapshot_at: iso(row.lastSnapshotAt),
    last_connection_at: iso(row.lastConnectionAt),
    last_activity_at: row.lastActiveAt.toISOString(),
    last_activity_source: row.lastActivitySource,
    idle_timeout_minutes: idleTimeoutOf(row, config.idleThresholdMinutes),
    auto_stop_at: iso(autoStopAt(row, config.idleThresholdMinutes)),
    egress_policy: effectivePolicy(row, config.egress),
    disk: diskView(row, config),
  };
}

export type ProjectFacts = ReturnType<typeof projectFacts>;

/** Disk use as last measured, beside its bounds. */
function diskView(row: ProjectRow, config: Config) {
  const gb = 1024 ** 3;
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    workspace_used_bytes: num(row.workspaceUsedBytes),
    workspace_limit_bytes: config.isolation.workspaceDiskGb * gb,
    rootfs_used_bytes: num(row.rootfsUsedBytes),
    rootfs_limit_bytes: config.isolation.rootfsGb * gb,
    measured_at: iso(row.diskMeasuredAt),
  };
}

/** What a list item carries: no key material. */
export function projectSummary(row: ProjectListRow): ProjectSummary {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    created_at: row.createdAt.toISOString(),
    last_active_at: row.lastActiveAt.toISOString(),
  };
}

export const sshKeyContext = (projectId: string) => `project:${projectId}:ssh-private-key`;

const iso = (d: Date | null) => d?.toISOString() ?? null;
