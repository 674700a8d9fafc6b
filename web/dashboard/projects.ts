import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import { type ProjectFacts, projectFacts } from "@/projects/view.ts";
import type { EgressPolicy } from "@/projects/egress.ts";
import { quotaUse } from "@/projects/queries.ts";

/**
 * What the project page shows: the project as the API gives it, never with its private key
 * (that leaves the server only through the key download the owner asks for), and what only
 * the page needs besides.
 */
export interface ProjectDetails extends ProjectFacts {
  status_changed_at: string;
  /** The command to paste, while SSH is open: it names the downloaded key's file. */
  ssh_command: string | null;
  has_private_key: boolean;
  /** The downloaded key's file name; the SSH command expects it in ~/.ssh. */
  key_file: string;
  snapshot_image: string | null;
  snapshot_size_bytes: string | null;
  last_backup_size_bytes: string | null;
  /** The policy as chosen, which egress_policy (what applies) may differ from. */
  egress: { policy: EgressPolicy; allowlist: string[]; open_allowed: boolean };
}

export function projectDetails(row: ProjectRow, config: Config): ProjectDetails {
  const facts = projectFacts(row, config);
  const keyFile = keyFileName(row.id);
  return {
    ...facts,
    status_changed_at: row.statusChangedAt.toISOString(),
    ssh_command: facts.ssh_port
      ? `ssh -i ~/.ssh/${keyFile} -p ${facts.ssh_port} ${facts.ssh_user}@${facts.ssh_host}`
      : null,
    has_private_key: row.sshPrivateKeyEncrypted !== null,
    key_file: keyFile,
    snapshot_image: row.snapshotImage,
    snapshot_size_bytes: row.snapshotSizeBytes,
    last_backup_size_bytes: row.lastBackupSizeBytes,
    egress: {
      policy: row.egressPolicy ?? config.egress.defaultPolicy,
      allowlist: row.egressAllowlist,
      open_allowed: config.egress.allowOpen,
    },
  };
}

/** The downloaded key's file name, the same one the SSH command expects in ~/.ssh. */
export const keyFileName = (projectId: string) => `pomodex-${projectId.slice(0, 8)}_ed25519`;

/** How many projects the user has and may have, for the create form. */
export async function quotaOf(
  sql: Sql,
  userId: string,
  defaultQuota: number,
): Promise<{ used: number; limit: number }> {
  const { used, quota } = await quotaUse(sql, userId);
  return { used, limit: quota ?? defaultQuota };
}
