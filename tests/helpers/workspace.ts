/** A project's workspace as the tests see it on the host (infra/host/workspace.ts keeps it). */
import { removeWorkspace, workspaceLayout } from "@/infra/host/workspace.ts";

/** Whether the project's workspace image is on disk under a server's DATA_DIR. */
export async function workspaceOnDisk(dataDir: string, projectId: string): Promise<boolean> {
  try {
    await Deno.stat(`${dataDir}/workspaces/${projectId}.ext4`);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Unmounts and deletes it (a failed test's leftover). Absent is fine. */
export async function removeWorkspaceOf(dataDir: string, projectId: string): Promise<void> {
  await removeWorkspace(await workspaceLayout(`${dataDir}/workspaces`, 1), projectId);
}
