import type { adminProjectView } from "../../lib/auth/admin.ts";
import { MAX_PROJECT_QUOTA } from "../../lib/config.ts";
import type { adminUserView } from "../../lib/auth/users.ts";
import { usePage } from "../../lib/dashboard/page-context.ts";
import { PostForm } from "../Form.tsx";
import { Layout } from "../Layout.tsx";
import { StatusBadge } from "../StatusBadge.tsx";
import { Time } from "../Time.tsx";

type User = ReturnType<typeof adminUserView>;
type Project = ReturnType<typeof adminProjectView>;

export interface AdminPageProps {
  users: { rows: User[]; next: string | null };
  projects: { rows: Project[]; next: string | null };
  /** DEFAULT_PROJECT_QUOTA: what an empty quota field means. */
  defaultQuota: number;
}

export function AdminPage({ users, projects, defaultQuota }: AdminPageProps) {
  const { viewer } = usePage();
  return (
    <Layout title="Admin">
      <h1>Administration</h1>

      <section aria-labelledby="users">
        <h2 id="users">Users</h2>
        <div class="table-wrap">
          <table class="table">
            <caption class="visually-hidden">Users, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Signed up</th>
                <th scope="col">Account</th>
                <th scope="col">Project quota</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {users.rows.map((u) => (
                <tr key={u.id} data-user-id={u.id}>
                  <th scope="row">{u.email}</th>
                  <td>{u.role}</td>
                  <td>
                    <Time at={u.created_at} />
                  </td>
                  <td>
                    {u.disabled_at
                      ? <span class="badge badge-error">Disabled</span>
                      : <span class="badge badge-running">Active</span>}
                  </td>
                  <td>
                    <QuotaForm user={u} defaultQuota={defaultQuota} />
                  </td>
                  <td>
                    {u.id === viewer?.userId ? <span class="muted">This is you</span> : (
                      <PostForm
                        action={`/dashboard/admin/users/${u.id}/${
                          u.disabled_at ? "enable" : "disable"
                        }`}
                        class="inline-form"
                        label={`${u.disabled_at ? "Enable" : "Disable"} ${u.email}`}
                      >
                        <button
                          type="submit"
                          class={u.disabled_at
                            ? "button button-small"
                            : "button button-small button-danger"}
                        >
                          {u.disabled_at ? "Enable" : "Disable"}
                          <span class="visually-hidden">{u.email}</span>
                        </button>
                      </PostForm>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {users.next && (
          <p>
            <a href={`/dashboard/admin?users=${encodeURIComponent(users.next)}`}>Older users</a>
          </p>
        )}
      </section>

      <section aria-labelledby="all-projects">
        <h2 id="all-projects">All projects</h2>
        {projects.rows.length === 0
          ? <p class="empty">No projects yet.</p>
          : (
            <div class="table-wrap">
              <table class="table">
                <caption class="visually-hidden">Every user's projects, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Owner</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last active</th>
                  </tr>
                </thead>
                <tbody>
                  {projects.rows.map((p) => (
                    <tr key={p.id}>
                      <th scope="row">{p.name}</th>
                      <td>{p.owner_email}</td>
                      <td>
                        <StatusBadge status={p.status} />
                      </td>
                      <td>
                        <Time at={p.created_at} />
                      </td>
                      <td>
                        <Time at={p.last_active_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        {projects.next && (
          <p>
            <a href={`/dashboard/admin?projects=${encodeURIComponent(projects.next)}`}>
              Older projects
            </a>
          </p>
        )}
      </section>
    </Layout>
  );
}

/** The user's project quota; empty means the default. Works without JavaScript. */
function QuotaForm({ user, defaultQuota }: { user: User; defaultQuota: number }) {
  const id = `quota-${user.id}`;
  return (
    <PostForm
      action={`/dashboard/admin/users/${user.id}/quota`}
      class="inline-form"
      label={`Project quota of ${user.email}`}
    >
      <label for={id} class="visually-hidden">Project quota of {user.email}</label>
      <input
        id={id}
        name="project_quota"
        type="number"
        inputMode="numeric"
        min={0}
        max={MAX_PROJECT_QUOTA}
        step={1}
        class="input-small"
        value={user.project_quota ?? ""}
        placeholder={`${defaultQuota} (default)`}
      />
      <button type="submit" class="button button-small">
        Save<span class="visually-hidden">the project quota of {user.email}</span>
      </button>
    </PostForm>
  );
}
