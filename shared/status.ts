/**
 * A project's statuses, the one list the server (projects/states.ts, the API's schemas) and
 * the islands share; this module runs in browsers too, so it imports nothing.
 */
export const statuses = [
  "creating",
  "running",
  "snapshotting",
  "stopped",
  "restoring",
  "deleting",
  "error",
] as const;
export type Status = typeof statuses[number];

export const statusLabels: Record<Status, string> = {
  creating: "Creating…",
  running: "Running",
  snapshotting: "Snapshotting…",
  stopped: "Stopped",
  restoring: "Restoring…",
  deleting: "Deleting…",
  error: "Error",
};

/** States that end on their own; the dashboard polls while a project is in one. */
export const transitional: ReadonlySet<string> = new Set<Status>([
  "creating",
  "snapshotting",
  "restoring",
  "deleting",
]);

export const isTransitional = (status: string) => transitional.has(status);

export const labelOf = (status: string) => statusLabels[status as Status] ?? status;
