import type { Status } from "./status.ts";

/**
 * A project as a list shows it: what GET /projects answers (projects/view.ts makes it), what
 * the dashboard's list renders and what its island reads back when it refreshes. No key
 * material. Snake case and ISO times, because it is the API's JSON.
 */
export interface ProjectSummary {
  id: string;
  name: string;
  status: Status;
  created_at: string;
  last_active_at: string;
}

/** A project as the admin's list shows it: the summary and its owner. */
export interface AdminProjectSummary extends ProjectSummary {
  user_id: string;
  owner_email: string;
}
