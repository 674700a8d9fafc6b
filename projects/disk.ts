import { workspaceUsage } from "@/infra/host/workspace.ts";
import { recordDiskUse } from "./queries.ts";
import type { ProjectRow } from "./rows.ts";
import type { ProjectDeps } from "./deps.ts";

/** A measurement younger than this is shown as it is (the engine walks the layer to size it). */
const FRESH_MS = 30_000;

/**
 * Measures a running project's disk use (the workspace from its file system, the container's
 * own layer from the engine) and records it; a stopped project keeps its last measurement.
 * A part that cannot be measured keeps its previous value.
 */
export async function measureDiskUse(
  deps: Pick<ProjectDeps, "sql" | "engine" | "isolation">,
  row: ProjectRow,
  opts: { maxAgeMs?: number } = {},
): Promise<ProjectRow> {
  if (row.status !== "running" || !row.containerId) return row;
  const age = row.diskMeasuredAt ? Date.now() - row.diskMeasuredAt.getTime() : Infinity;
  if (age < (opts.maxAgeMs ?? FRESH_MS)) return row;
  const [workspace, info] = await Promise.all([
    workspaceUsage(deps.isolation.workspaces, row.id).catch(() => null),
    deps.engine.inspectContainer(row.containerId, { size: true }).catch(() => null),
  ]);
  const updated = await recordDiskUse(deps.sql, row.id, {
    workspaceBytes: workspace?.used ?? null,
    rootfsBytes: info?.SizeRw ?? null,
  });
  return updated ?? row;
}
