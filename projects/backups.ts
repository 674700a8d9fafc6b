import type { Sql } from "@/infra/db/database.ts";
import type { DockerClient } from "@/infra/docker/mod.ts";
import { resetTarOwnership } from "@/infra/docker/tar-ownership.ts";
import { type BackupObject, type BackupStore, pruneBackups } from "@/infra/storage/mod.ts";
import { recordBackup } from "./queries.ts";
import type { ProjectRow } from "./rows.ts";

export interface BackupDeps {
  sql: Sql;
  engine: DockerClient;
  backups: BackupStore;
  config: { backupKeep: number };
}

export const backupPrefix = (row: Pick<ProjectRow, "gcsPrefix">) => `${row.gcsPrefix}backups/`;

/**
 * Streams the workspace out of the container through the engine's archive endpoint,
 * gzipped, into the backup store; keeps the newest BACKUP_KEEP.
 */
export async function backupWorkspace(
  deps: BackupDeps,
  row: Pick<ProjectRow, "id" | "containerId" | "gcsPrefix">,
  now = new Date(),
): Promise<{ key: string; size: number }> {
  if (!row.containerId) throw new Error("the project has no container to back up");
  const tar = await deps.engine.getArchive(row.containerId, "/home/agent");
  const key = `${backupPrefix(row)}${now.toISOString().replace(/[:.]/g, "-")}.tar.gz`;
  const { size } = await deps.backups.put(key, tar.pipeThrough(gzip()));
  if (!(await recordBackup(deps.sql, row.id, { at: now, sizeBytes: size }))) {
    // The project is being deleted (or gone), and its backups with it: this one too.
    await deps.backups.delete(key);
    throw new Error("the project was deleted during its backup");
  }
  await pruneBackups(deps.backups, backupPrefix(row), deps.config.backupKeep);
  return { key, size };
}

export function listBackups(deps: Pick<BackupDeps, "backups">, row: Pick<ProjectRow, "gcsPrefix">) {
  return deps.backups.list(backupPrefix(row));
}

/** Puts the newest backup back into a fresh workspace. False when there is none. */
export async function restoreLatestBackup(
  deps: BackupDeps,
  row: Pick<ProjectRow, "gcsPrefix">,
  containerId: string,
): Promise<BackupObject | null> {
  const latest = (await listBackups(deps, row)).at(-1);
  if (!latest) return null;
  const body = await deps.backups.get(latest.key);
  if (!body) return null;
  // The archive holds "agent/..." because it was taken of /home/agent.
  await deps.engine.putArchive(
    containerId,
    "/home",
    body.pipeThrough(gunzip()).pipeThrough(resetTarOwnership()),
  );
  // Extracted as root (the ids in the archive may be the host's, which no user namespace
  // maps back); the workspace belongs to agent.
  const chown = await deps.engine.exec(containerId, ["chown", "-R", "agent:agent", "/home/agent"], {
    user: "root",
  });
  if (chown.exitCode !== 0) throw new Error("could not give the restored workspace back to agent");
  return latest;
}

// The DOM typings say BufferSource in; at run time these take the Uint8Array chunks we have.
const gzip = () =>
  new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
const gunzip = () =>
  new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
