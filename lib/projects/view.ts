import type { Config } from "../config.ts";
import type { SecretBox } from "../crypto/secrets.ts";
import { autoStopAt, idleTimeoutOf } from "./activity.ts";
import type { ProjectRow } from "./rows.ts";

/** The project as API.md describes it (snake_case, ISO times, SSH details only while running). */
export async function projectView(
  row: ProjectRow,
  config: Config,
  secrets: SecretBox,
) {
  const running = row.status === "running";
  return {
    ...projectSummary(row),
    status_reason: row.statusReason,
    terminal_url: running ? `${config.terminal.publicUrl}/terminal/${row.id}` : null,
    ssh_host: running ? config.engine.sshHost : null,
    ssh_port: running ? row.sshHostPort : null,
    ssh_user: "agent",
    ssh_public_key: row.sshPublicKey,
    ssh_private_key: row.sshPrivateKeyEncrypted
      ? await secrets.open(row.sshPrivateKeyEncrypted, sshKeyContext(row.id))
      : null,
    last_backup_at: iso(row.lastBackupAt),
    last_snapshot_at: iso(row.lastSnapshotAt),
    last_connection_at: iso(row.lastConnectionAt),
    last_activity_at: row.lastActiveAt.toISOString(),
    last_activity_source: row.lastActivitySource,
    idle_timeout_minutes: idleTimeoutOf(row, config.idleThresholdMinutes),
    auto_stop_at: iso(autoStopAt(row, config.idleThresholdMinutes)),
  };
}

/** What a list item carries: no key material. */
export function projectSummary(row: ProjectRow) {
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
