import { backupWorkspace } from "@/projects/backups.ts";
import { claimBackupsDue } from "@/projects/queries.ts";
import { reconcile } from "@/projects/reconciler.ts";
import type { ProjectDeps } from "@/projects/deps.ts";
import { runDiskCheck } from "./disk.ts";
import { runInactivityCheck } from "./inactivity.ts";
import { type Job, scheduleJobs } from "./schedule.ts";
import { messageOf } from "@/core/errors.ts";

/**
 * The periodic work of an instance. The heartbeat always runs: without it other instances
 * would take this one's in-flight work for a dead instance's. The rest (inactivity checker,
 * backups, reconciler) runs only where CRON is on.
 */
export function startJobs(deps: ProjectDeps) {
  const heartbeatJob: Job = { name: "heartbeat", everySeconds: 5, run: () => heartbeat(deps) };
  if (!deps.config.cron) return scheduleJobs([heartbeatJob], deps.log);
  const jobs: Job[] = [
    heartbeatJob,
    {
      name: "inactivity-checker",
      everySeconds: deps.config.checkIntervalSeconds,
      run: () => runInactivityCheck(deps),
    },
    { name: "backups", everySeconds: 300, run: () => runBackups(deps) },
    { name: "disk", everySeconds: deps.config.checkIntervalSeconds, run: () => runDiskCheck(deps) },
    // Often enough that a killed instance's half-done work is mended within seconds of its
    // heartbeat going silent (HEARTBEAT_TIMEOUT_SECONDS).
    { name: "reconciler", everySeconds: 20, run: () => reconcile(deps) },
  ];
  return scheduleJobs(jobs, deps.log);
}

/** Tells the other instances this one is alive; forgets instances gone for a day. */
export async function heartbeat(deps: ProjectDeps) {
  await deps.sql`UPDATE instances SET heartbeat_at = now() WHERE id = ${deps.instanceId}`;
  await deps.sql`DELETE FROM instances WHERE heartbeat_at < now() - interval '1 day'`;
}

export async function runBackups(deps: ProjectDeps, now = new Date()) {
  const due = await claimBackupsDue(deps.sql, deps.config.backupIntervalMinutes, now);
  for (const row of due) {
    await backupWorkspace(deps, row, now).catch((err) =>
      deps.log.warn("scheduled backup failed", {
        project_id: row.id,
        error: messageOf(err),
      })
    );
  }
  return due.map((r) => r.id);
}
