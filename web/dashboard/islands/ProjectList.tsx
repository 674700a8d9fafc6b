import { useState } from "preact/hooks";
import { api } from "./browser/api.ts";
import { formatTime } from "@/shared/format.ts";
import { usePolling } from "./browser/poll.ts";
import type { ProjectSummary } from "@/shared/project.ts";
import { isTransitional, labelOf } from "@/shared/status.ts";
import { StatusBadge } from "@/shared/StatusBadge.tsx";

/**
 * The projects table. While any project is creating, snapshotting, restoring or deleting,
 * it refreshes itself from GET /projects every 2 s and announces the changes; it stops as
 * soon as everything has settled.
 */
export default function ProjectList(props: { projects: ProjectSummary[] }) {
  const [projects, setProjects] = useState(props.projects);
  const [announcement, setAnnouncement] = useState("");
  const [problem, setProblem] = useState("");

  usePolling(projects.some((p) => isTransitional(p.status)), async () => {
    const res = await api("/projects?limit=100");
    if (!res.ok) throw new Error(`status ${res.status}`);
    const fresh = await res.json() as ProjectSummary[];
    const before = new Map(projects.map((p) => [p.id, p.status]));
    const changes = fresh
      .filter((p) => before.has(p.id) && before.get(p.id) !== p.status)
      .map((p) => `${p.name}: ${labelOf(p.status)}`);
    const gone = projects.filter((p) => !fresh.some((f) => f.id === p.id)).map((p) =>
      `${p.name}: deleted`
    );
    if (changes.length + gone.length > 0) setAnnouncement([...changes, ...gone].join(". "));
    setProblem("");
    setProjects(fresh);
  }, () => setProblem("Live updates paused: the server did not answer. Retrying…"));

  return (
    <div>
      <p class="visually-hidden" role="status" aria-live="polite">{announcement}</p>
      {problem && <p class="alert alert-info">{problem}</p>}
      {projects.length === 0
        ? (
          <p class="empty" id="no-projects">
            No projects yet. Give your first one a name above.
          </p>
        )
        : (
          <div class="table-wrap">
            <table class="table" id="projects">
              <caption class="visually-hidden">Your projects, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last active</th>
                </tr>
              </thead>
              <tbody>
                {projects.map((p) => (
                  <tr key={p.id} data-project-id={p.id}>
                    <th scope="row">
                      <a href={`/dashboard/projects/${p.id}`}>{p.name}</a>
                    </th>
                    <td>
                      <StatusBadge status={p.status} />
                    </td>
                    <td>
                      <time datetime={p.created_at}>{formatTime(p.created_at)}</time>
                    </td>
                    <td>
                      <time datetime={p.last_active_at}>{formatTime(p.last_active_at)}</time>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </div>
  );
}
