import type { Sql, SqlFragment } from "@/infra/db/database.ts";
import { invalidState, notFound } from "@/core/errors.ts";
import { statusOf, updateStatus } from "./queries.ts";
import type { ProjectRow } from "./rows.ts";
import type { Status } from "@/shared/status.ts";

/**
 * The lifecycle of DESIGN.md as data: each step names the states it may leave and the
 * state it enters. Nothing else changes a project's status.
 */
export const steps = {
  provisioned: { from: ["creating"], to: "running" },
  stopRequested: { from: ["running"], to: "snapshotting" },
  stopped: { from: ["snapshotting"], to: "stopped" },
  startRequested: { from: ["stopped", "error"], to: "restoring" },
  started: { from: ["restoring"], to: "running" },
  // From deleting too, but only a delete nobody is working on (see deleteProject).
  deleteRequested: { from: ["running", "stopped", "error", "deleting"], to: "deleting" },
  failed: { from: ["creating", "running", "snapshotting", "restoring", "deleting"], to: "error" },
  // The reconciler hands an interrupted snapshot back to a container that still runs.
  snapshotAbandoned: { from: ["snapshotting"], to: "running" },
} as const satisfies Record<string, { from: readonly Status[]; to: Status }>;
export type Step = keyof typeof steps;

export type ProjectChanges = Partial<
  Pick<
    ProjectRow,
    | "containerId"
    | "sshHostPort"
    | "snapshotImage"
    | "snapshotSizeBytes"
    | "lastSnapshotAt"
    | "lastBackupAt"
    | "lastBackupSizeBytes"
    | "lastActiveAt"
    | "lastActivitySource"
    | "workerId"
  >
>;

/**
 * One conditional UPDATE: it happens only if the project is still in a state the step
 * leaves, so of two racing requests exactly one wins; the loser gets 409 (or 404 when
 * the project is gone or not the caller's).
 */
export interface StepOptions {
  userId?: string;
  reason?: string | null;
  changes?: ProjectChanges;
  /** Narrows the step's states, e.g. "failed, but only if it is still running". */
  onlyFrom?: Status[];
  /** One more condition the row must meet, e.g. "still idle". */
  andWhere?: SqlFragment;
  /** Returns null instead of throwing when the step does not apply. */
  orNull?: boolean;
}

export function applyStep(
  sql: Sql,
  projectId: string,
  step: Step,
  opts: StepOptions & { orNull: true },
): Promise<ProjectRow | null>;
export function applyStep(
  sql: Sql,
  projectId: string,
  step: Step,
  opts?: StepOptions & { orNull?: false },
): Promise<ProjectRow>;
export async function applyStep(
  sql: Sql,
  projectId: string,
  step: Step,
  opts: StepOptions = {},
): Promise<ProjectRow | null> {
  const { to } = steps[step];
  const from = (steps[step].from as readonly Status[]).filter((s) =>
    !opts.onlyFrom || opts.onlyFrom.includes(s)
  );
  const changes = { ...opts.changes, statusReason: opts.reason ?? null };
  const row = await updateStatus(sql, projectId, {
    to,
    from,
    changes: changes as Record<string, unknown>,
    userId: opts.userId,
    andWhere: opts.andWhere,
  });
  if (row) return row;
  if (opts.orNull) return null;
  const current = await statusOf(sql, projectId, opts.userId);
  if (!current || (current === "deleting" && step === "deleteRequested")) {
    throw notFound("Project not found");
  }
  throw invalidState(
    `The project is ${current}; it must be ${from.join(" or ")} for this`,
  );
}
