import { measureDiskUse } from "@/projects/disk.ts";
import { runningProjectsByDiskAge } from "@/projects/queries.ts";
import type { ProjectDeps } from "@/projects/deps.ts";
import { snapshotAndStop } from "@/projects/lifecycle/stop.ts";
import { applyStep } from "@/projects/states.ts";

export interface DiskReport {
  measured: number;
  stoppedOverRootfs: string[];
}

/**
 * Measures every running project's disk use. Where the engine's storage cannot bound a
 * container's own layer (overlay without project quotas, as on Podman over ext4), this is
 * where SANDBOX_ROOTFS_GB holds: a sandbox found over it is snapshotted and stopped, with the
 * reason; its workspace is untouched, and the owner frees the space after the next start.
 */
export async function runDiskCheck(deps: ProjectDeps): Promise<DiskReport> {
  const report: DiskReport = { measured: 0, stoppedOverRootfs: [] };
  const bound = deps.config.isolation.rootfsGb * 1024 ** 3;
  const running = await runningProjectsByDiskAge(deps.sql, 200);
  for (const row of running) {
    const measured = await measureDiskUse(deps, row, { maxAgeMs: 0 });
    report.measured++;
    const used = Number(measured.rootfsUsedBytes ?? 0);
    // Where the engine bounds layers itself, none gets past the bound to be found here.
    if (used <= bound) continue;
    const reason = `its own layer holds ${gib(used)} GB outside /home/agent, over the ` +
      `${deps.config.isolation.rootfsGb} GB bound (SANDBOX_ROOTFS_GB); free space after a start`;
    const claimed = await applyStep(deps.sql, row.id, "stopRequested", {
      reason,
      changes: { workerId: deps.instanceId },
      orNull: true,
    });
    if (!claimed) continue;
    await snapshotAndStop(deps, claimed, { by: "disk", reason }).catch(() => {});
    report.stoppedOverRootfs.push(row.id);
  }
  return report;
}

const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(1);
