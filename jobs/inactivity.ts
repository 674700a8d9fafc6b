import { isUnreachable } from "@/infra/docker/mod.ts";
import { countSshSessions, recordActivity } from "@/projects/activity.ts";
import { idlePastTimeout, idleRunningProjects } from "@/projects/queries.ts";
import type { ProjectRow } from "@/projects/rows.ts";
import type { ProjectDeps } from "@/projects/deps.ts";
import { snapshotAndStop, type StopCause } from "@/projects/lifecycle/stop.ts";
import { applyStep } from "@/projects/states.ts";
import { messageOf } from "@/core/errors.ts";

export interface InactivityCheckOptions {
  now?: Date;
  /** How many candidates one pass looks at; the rest wait for the next pass. */
  batch?: number;
  /** Injected in the benchmark, which measures the pass without the snapshots. */
  stop?: (row: ProjectRow, cause: StopCause) => Promise<unknown>;
  sshSessions?: (containerId: string) => Promise<number>;
}

export interface InactivityReport {
  candidates: number;
  keptBySsh: string[];
  /** Kept because the engine did not answer when their SSH sessions were read. */
  unchecked: string[];
  stopped: string[];
  failed: string[];
}

/**
 * One pass of the inactivity checker: find running projects idle past their timeout
 * (never-connected ones count from creation), look for open SSH sessions first, then
 * claim each remaining one with a conditional UPDATE so that of several instances
 * exactly one snapshots it, and stop it through the same code as the API.
 */
export async function runInactivityCheck(
  deps: ProjectDeps,
  opts: InactivityCheckOptions = {},
): Promise<InactivityReport> {
  const now = opts.now ?? new Date();
  const stop = opts.stop ?? ((row, cause) => snapshotAndStop(deps, row, cause));
  const sshSessions = opts.sshSessions ??
    ((containerId) => countSshSessions(deps.engine, containerId));
  const report: InactivityReport = {
    candidates: 0,
    keptBySsh: [],
    unchecked: [],
    stopped: [],
    failed: [],
  };

  const candidates = await idleRunningProjects(
    deps.sql,
    deps.config.idleThresholdMinutes,
    now,
    opts.batch ?? 100,
  );
  report.candidates = candidates.length;
  for (const candidate of candidates) {
    if (candidate.containerId) {
      const sessions = await sshSessions(candidate.containerId).catch((err) => {
        const error = messageOf(err);
        // An engine that does not answer says nothing about the sessions, and stopping a
        // project someone may be using is the one mistake the checker must not make: it
        // waits for a pass that can look. A container that cannot show its own table
        // (its user broke cat or sh) must not escape auto-stop that way: no sessions.
        if (isUnreachable(err)) {
          deps.log.warn("auto-stop: engine unreachable; the project stays up this pass", {
            project_id: candidate.id,
            error,
          });
          return null;
        }
        deps.log.warn(
          "auto-stop: the container's TCP table is unreadable; no SSH session counted",
          {
            project_id: candidate.id,
            error,
          },
        );
        return 0;
      });
      if (sessions === null) {
        report.unchecked.push(candidate.id);
        continue;
      }
      if (sessions > 0) {
        await recordActivity(deps.sql, candidate.id, "ssh", now);
        report.keptBySsh.push(candidate.id);
        continue;
      }
    }
    const minutes = candidate.idleTimeoutMinutes ?? deps.config.idleThresholdMinutes;
    const reason =
      `idle for ${minutes} minutes (last activity: ${candidate.lastActivitySource} at ${candidate.lastActiveAt.toISOString()})`;
    const claimed = await claim(deps, candidate, reason, now);
    if (!claimed) continue; // used meanwhile, or another instance took it
    try {
      await stop(claimed, { by: "idle", reason });
      report.stopped.push(claimed.id);
    } catch (err) {
      deps.log.warn("auto-stop failed", {
        project_id: claimed.id,
        error: messageOf(err),
      });
      report.failed.push(claimed.id);
    }
  }
  if (report.stopped.length + report.failed.length > 0) {
    deps.log.info("inactivity checker", { ...report, candidates: report.candidates });
  }
  return report;
}

/** Running → snapshotting, only if it is still idle: activity since we looked wins. */
async function claim(deps: ProjectDeps, candidate: ProjectRow, reason: string, now: Date) {
  return await applyStep(deps.sql, candidate.id, "stopRequested", {
    reason,
    changes: { workerId: deps.instanceId },
    andWhere: idlePastTimeout(deps.sql, deps.config.idleThresholdMinutes, now),
    orNull: true,
  });
}
