import type { Status } from "@/shared/status.ts";

/** What last kept a project from auto-stop (its last_activity_source). */
export type ActivitySource = "api" | "terminal" | "ssh" | "created";

/** A projects row as postgres.js returns it (camelCased columns). */
export interface ProjectRow {
  id: string;
  userId: string;
  name: string;
  status: Status;
  statusReason: string | null;
  statusChangedAt: Date;
  containerId: string | null;
  containerName: string | null;
  volumeName: string | null;
  sshHostPort: number | null;
  sshPublicKey: string;
  sshPrivateKeyEncrypted: string | null;
  gcpSaEmail: string | null;
  gcpSaKeyEncrypted: string | null;
  gcsPrefix: string;
  snapshotImage: string | null;
  snapshotSizeBytes: string | null;
  lastSnapshotAt: Date | null;
  lastBackupAt: Date | null;
  lastBackupSizeBytes: string | null;
  idleTimeoutMinutes: number | null;
  createdAt: Date;
  lastActiveAt: Date;
  lastActivitySource: string;
  lastConnectionAt: Date | null;
  /** The instance working on a transitional state; see 007_instances.sql. */
  workerId: string | null;
  /** Its network's /28 in SANDBOX_SUBNET_POOL; see 008_isolation.sql. */
  sandboxSlot: number | null;
  /** Null: EGRESS_DEFAULT_POLICY. */
  egressPolicy: "open" | "allowlist" | "none" | null;
  egressAllowlist: string[];
  workspaceUsedBytes: string | null;
  rootfsUsedBytes: string | null;
  diskMeasuredAt: Date | null;
}

/** Engine resources are named after the project, so a retry or the reconciler finds them. */
export const containerNameOf = (projectId: string) => `pomodex-${projectId}`;
export const volumeNameOf = (projectId: string) => `pomodex-vol-${projectId}`;
export const networkNameOf = (projectId: string) => `pomodex-net-${projectId}`;
export const projectLabel = "pomodex.project";
export const installationLabel = "pomodex.installation";

/** The shortest idle timeout a project may set for itself (IDLE_THRESHOLD_MINUTES may be shorter). */
export const SHORTEST_IDLE_TIMEOUT_MINUTES = 5;
