import { MAX_PROJECT_QUOTA } from "@/core/config.ts";

/**
 * One-line messages after a redirect, carried as a code in `?flash=`: only these fixed
 * texts are ever shown, so nothing a user typed is echoed back from a URL.
 */
export interface Flash {
  kind: "success" | "info" | "error";
  text: string;
}

const messages = {
  created: { kind: "success", text: "Project created. It is running." },
  creating: { kind: "info", text: "Creating the project. This page updates when it is ready." },
  stopped: { kind: "success", text: "Project stopped. A snapshot was saved first." },
  stopping: { kind: "info", text: "Saving a snapshot, then stopping the project…" },
  started: { kind: "success", text: "Project started from its latest snapshot." },
  starting: { kind: "info", text: "Starting the project from its latest snapshot…" },
  deleted: { kind: "success", text: "Project deleted, with its workspace, snapshots and backups." },
  deleting: { kind: "info", text: "Deleting the project…" },
  invalid_state: {
    kind: "error",
    text: "That is not possible in the project's current state. The page shows where it is now.",
  },
  action_failed: {
    kind: "error",
    text: "The action failed. The project's status says why; you can try again.",
  },
  logged_out: { kind: "success", text: "You are logged out." },
  signed_up: { kind: "success", text: "Welcome to Pomodex. Create your first project below." },
  login_needed: { kind: "info", text: "Please log in to continue." },
  user_disabled: {
    kind: "success",
    text: "User disabled. Their sessions and API keys are revoked.",
  },
  user_enabled: { kind: "success", text: "User enabled. They can log in again." },
  cannot_disable_self: { kind: "error", text: "You cannot disable your own account." },
  quota_set: { kind: "success", text: "Project quota saved." },
  egress_saved: {
    kind: "success",
    text: "Network access saved. The running sandbox follows it within seconds.",
  },
  quota_invalid: {
    kind: "error",
    text:
      `A project quota is a whole number from 0 to ${MAX_PROJECT_QUOTA}, or empty for the default.`,
  },
  invite_revoked: { kind: "success", text: "Invite revoked. Its code no longer works." },
  invite_already_used: {
    kind: "error",
    text: "That invite has been used already, so it cannot be revoked.",
  },
} as const satisfies Record<string, Flash>;

export type FlashCode = keyof typeof messages;

export function flashOf(code: string | null | undefined): Flash | null {
  if (!code || !Object.hasOwn(messages, code)) return null;
  return messages[code as FlashCode];
}

/** `path` with `?flash=code` (or `&flash=code`) added. */
export function withFlash(path: string, code: FlashCode): string {
  return `${path}${path.includes("?") ? "&" : "?"}flash=${code}`;
}
