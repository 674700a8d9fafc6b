import { useState } from "preact/hooks";
import { api } from "./browser/api.ts";
import { usePolling } from "./browser/poll.ts";
import type { ProjectSummary } from "@/shared/project.ts";
import { isTransitional, labelOf, type Status } from "@/shared/status.ts";
import { StatusBadge } from "@/shared/StatusBadge.tsx";

/**
 * The project page's status badge. While the project is changing state it follows
 * GET /projects/{id} every 2 s; once the project settles in a new state, the page is
 * rendered again by the server, because the actions, the SSH command and the terminal
 * all depend on the state.
 */
export default function ProjectStatus(props: Pick<ProjectSummary, "id" | "status">) {
  const [status, setStatus] = useState(props.status);
  const [announcement, setAnnouncement] = useState("");

  usePolling(isTransitional(status), async () => {
    const res = await api(`/projects/${encodeURIComponent(props.id)}`);
    if (res.status === 404) {
      location.assign("/dashboard?flash=deleted");
      return;
    }
    if (!res.ok) throw new Error(`status ${res.status}`);
    // Only the status is read; nothing else of the answer is kept.
    const fresh = (await res.json() as { status: Status }).status;
    if (fresh === status) return;
    setStatus(fresh);
    setAnnouncement(`The project is now ${labelOf(fresh).replace("…", "")}.`);
    if (!isTransitional(fresh)) location.reload();
  });

  return (
    <span class="status-live">
      <StatusBadge status={status} id="project-status" />
      <span class="visually-hidden" role="status" aria-live="polite">{announcement}</span>
    </span>
  );
}
