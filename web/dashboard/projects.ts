import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import { autoStopAt, idleTimeoutOf } from "@/projects/activity.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import type { Status } from "@/shared/status.ts";
import { diskView, projectSummary } from "@/projects/view.ts";
import { effectivePolicy, type EgressPolicy } from "@/projects/egress.ts";

/**
 * What the project page shows: everything but key material. The private key leaves the
 * server only through the key download the owner asks for.
 */
export interface ProjectDetails {
  id: string;
  name: string;
  status: Status;
  statusReason: string | null;
  statusChangedAt: Date;
  createdAt: Date;
  lastActiveAt: Date;
  lastActivitySource: string;
  lastConnectionAt: Date | null;
  idleTimeoutMinutes: number | null;
  autoStopAt: Date | null;
  lastSnapshotAt: Date | null;
  snapshotImage: string | null;
  snapshotSizeBytes: string | null;
  lastBackupAt: Date | null;
  lastBackupSizeBytes: string | null;
  ssh: { host: string; port: number; user: string; command: string } | null;
  hasPrivateKey: boolean;
  /** The downloaded key's file name; the SSH command expects it in ~/.ssh. */
  keyFile: string;
  egress: {
    policy: EgressPolicy;
    effectivePolicy: EgressPolicy;
    allowlist: string[];
    openAllowed: boolean;
  };
  disk: {
    workspaceUsed: number | null;
    workspaceLimit: number;
    rootfsUsed: number | null;
    rootfsLimit: number;
    measuredAt: Date | null;
  };
}

export function projectDetails(row: ProjectRow, config: Config): ProjectDetails {
  const keyFile = keyFileName(row.id);
  const disk = diskView(row, config);
  const ssh = row.status === "running" && row.sshHostPort
    ? {
      host: config.engine.sshHost,
      port: row.sshHostPort,
      user: "agent",
      command: `ssh -i ~/.ssh/${keyFile} -p ${row.sshHostPort} agent@${config.engine.sshHost}`,
    }
    : null;
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    statusReason: row.statusReason,
    statusChangedAt: row.statusChangedAt,
    createdAt: row.createdAt,
    lastActiveAt: row.lastActiveAt,
    lastActivitySource: row.lastActivitySource,
    lastConnectionAt: row.lastConnectionAt,
    idleTimeoutMinutes: idleTimeoutOf(row, config.idleThresholdMinutes),
    autoStopAt: autoStopAt(row, config.idleThresholdMinutes),
    lastSnapshotAt: row.lastSnapshotAt,
    snapshotImage: row.snapshotImage,
    snapshotSizeBytes: row.snapshotSizeBytes,
    lastBackupAt: row.lastBackupAt,
    lastBackupSizeBytes: row.lastBackupSizeBytes,
    ssh,
    hasPrivateKey: row.sshPrivateKeyEncrypted !== null,
    keyFile,
    egress: {
      policy: row.egressPolicy ?? config.egress.defaultPolicy,
      effectivePolicy: effectivePolicy(row, config.egress),
      allowlist: row.egressAllowlist,
      openAllowed: config.egress.allowOpen,
    },
    disk: {
      workspaceUsed: disk.workspace_used_bytes,
      workspaceLimit: disk.workspace_limit_bytes,
      rootfsUsed: disk.rootfs_used_bytes,
      rootfsLimit: disk.rootfs_limit_bytes,
      measuredAt: row.diskMeasuredAt,
    },
  };
}

/** The downloaded key's file name, the same one the SSH command expects in ~/.ssh. */
export const keyFileName = (projectId: string) => `pomodex-${projectId.slice(0, 8)}_ed25519`;

/** The list page's rows: the same summary the JSON API gives (no key material). */
export const summaryOf = projectSummary;

/** How many projects the user has and may have, for the create form. */
export async function quotaOf(
  sql: Sql,
  userId: string,
  defaultQuota: number,
): Promise<{ used: number; limit: number }> {
  const [row] = await sql<{ used: number; quota: number | null }[]>`
    SELECT
      (SELECT count(*)::int FROM projects WHERE user_id = ${userId} AND status <> 'deleting') AS used,
      (SELECT project_quota FROM users WHERE id = ${userId}) AS quota`;
  return { used: row?.used ?? 0, limit: row?.quota ?? defaultQuota };
}
