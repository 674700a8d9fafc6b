import type { Sql } from "@/infra/db/database.ts";
import type { DockerClient } from "@/infra/docker/mod.ts";
import { readTcpTables } from "@/infra/host/proc.ts";
import { touchActivity } from "./queries.ts";
import type { ActivitySource } from "./rows.ts";

export type { ActivitySource };

/** Marks a running project as used now, so the inactivity checker leaves it alone. */
export async function recordActivity(
  sql: Sql,
  projectId: string,
  source: ActivitySource,
  now: Date = new Date(),
): Promise<void> {
  await touchActivity(sql, projectId, { source, at: now });
}

/** The project's idle timeout in minutes, or null when auto-stop is off for it. */
export function idleTimeoutOf(
  row: { idleTimeoutMinutes: number | null },
  defaultMinutes: number,
): number | null {
  const minutes = row.idleTimeoutMinutes ?? defaultMinutes;
  return minutes === 0 ? null : minutes;
}

export function autoStopAt(
  row: { status: string; lastActiveAt: Date; idleTimeoutMinutes: number | null },
  defaultMinutes: number,
): Date | null {
  const minutes = idleTimeoutOf(row, defaultMinutes);
  if (row.status !== "running" || minutes === null) return null;
  return new Date(row.lastActiveAt.getTime() + minutes * 60_000);
}

/**
 * Open SSH sessions: ESTABLISHED (state 01) TCP connections on local port 22 (0016) in the
 * sandbox's TCP tables, read from the host's /proc through the container's main process: no
 * program of the sandbox runs (its owner could make it lie, hang or flood us), and the read
 * is capped. A table that cannot be read throws; the checker counts that as no session.
 */
export async function countSshSessions(engine: DockerClient, containerId: string): Promise<number> {
  const info = await engine.inspectContainer(containerId);
  if (!info?.State.Running || !info.State.Pid) throw new Error("the container is not running");
  return parseEstablishedOnPort(await readTcpTables(info.State.Pid), 22);
}

export function parseEstablishedOnPort(table: string, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of table.split("\n")) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st ...
    if (fields.length < 4 || !fields[1].includes(":")) continue;
    if (fields[1].split(":").at(-1) === hexPort && fields[3] === "01") count++;
  }
  return count;
}
