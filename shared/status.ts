/** Project statuses as the dashboard shows them (shared by the server and the islands). */
export type ProjectStatus =
  | "creating"
  | "running"
  | "snapshotting"
  | "stopped"
  | "restoring"
  | "deleting"
  | "error";

export const statusLabels: Record<ProjectStatus, string> = {
  creating: "Creating…",
  running: "Running",
  snapshotting: "Snapshotting…",
  stopped: "Stopped",
  restoring: "Restoring…",
  deleting: "Deleting…",
  error: "Error",
};

/** States that end on their own; the dashboard polls while a project is in one. */
export const transitional: ReadonlySet<string> = new Set([
  "creating",
  "snapshotting",
  "restoring",
  "deleting",
]);

export const isTransitional = (status: string) => transitional.has(status);

export const labelOf = (status: string) => statusLabels[status as ProjectStatus] ?? status;
