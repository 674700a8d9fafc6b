import CopyButton from "@/web/dashboard/islands/CopyButton.tsx";
import type { AdminProjectSummary } from "@/shared/project.ts";
import {
  INVITE_DEFAULT_DAYS,
  INVITE_MAX_DAYS,
  INVITE_MIN_DAYS,
  INVITE_NOTE_MAX_LENGTH,
  type InviteStatus,
  type InviteView,
} from "@/auth/invites.ts";
import { MAX_PROJECT_QUOTA } from "@/core/config.ts";
import type { adminUserView } from "@/auth/users.ts";
import { usePage } from "@/web/dashboard/page-context.ts";
import { Field, FormError, PostForm } from "@/web/dashboard/components/Form.tsx";
import { Island } from "@/web/dashboard/components/Island.tsx";
import { Layout } from "@/web/dashboard/components/Layout.tsx";
import { StatusBadge } from "@/shared/StatusBadge.tsx";
import { Time } from "@/web/dashboard/components/Time.tsx";

type User = ReturnType<typeof adminUserView>;
type Project = AdminProjectSummary;

export interface AdminPageProps {
  users: { rows: User[]; next: string | null };
  projects: { rows: Project[]; next: string | null };
  /** DEFAULT_PROJECT_QUOTA: what an empty quota field means. */
  defaultQuota: number;
  invites: { rows: InviteView[]; next: string | null };
  /** REGISTRATION, so the invites section can say whether its codes are needed now. */
  registration: "open" | "invite" | "closed";
  /** The create-invite form as submitted, with its problems (shown inline). */
  inviteForm?: InviteFormState;
  /** The invite just made: its code and link, shown in this one answer only. */
  createdInvite?: { code: string; signupUrl: string; expiresAt: string; note: string | null };
}

export interface InviteFormState {
  days?: string;
  note?: string;
  errors?: { days?: string; note?: string };
}

export function AdminPage(props: AdminPageProps) {
  const { users, projects, defaultQuota } = props;
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
                  <th scope="row" class="cell-min">{u.email}</th>
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

      <Invites {...props} />

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
                      <th scope="row" class="cell-min">{p.name}</th>
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

const registrationSays = {
  open: "Registration is open (REGISTRATION=open): anyone can sign up, and invite codes are " +
    "not asked for.",
  invite: "Registration is by invitation (REGISTRATION=invite): signing up needs one of these " +
    "codes, and each code signs up one person.",
  closed: "Registration is closed (REGISTRATION=closed): nobody can sign up, with or without " +
    "a code.",
};

const inviteBadge: Record<InviteStatus, { label: string; class: string }> = {
  active: { label: "Active", class: "badge badge-running" },
  used: { label: "Used", class: "badge" },
  expired: { label: "Expired", class: "badge" },
  revoked: { label: "Revoked", class: "badge badge-error" },
};

/** Make an invite (the code shown once), see every invite's status, revoke unused ones. */
function Invites({ invites, registration, inviteForm, createdInvite }: AdminPageProps) {
  const errors = inviteForm?.errors;
  return (
    <section aria-labelledby="invites">
      <h2 id="invites">Invites</h2>
      <p class="muted">{registrationSays[registration]}</p>

      {createdInvite && (
        <div class="stack" id="new-invite">
          <div class="alert alert-warning" role="status">
            <strong>Invite created.</strong>{" "}
            Copy the code or the sign-up link now: it is not shown again. It works once, until{" "}
            <Time at={createdInvite.expiresAt} />.
          </div>
          <div>
            <label for="new-invite-code">Invite code</label>
            <div class="copy-row">
              <input
                id="new-invite-code"
                class="code-input"
                type="text"
                readOnly
                value={createdInvite.code}
              />
              <Island
                name="CopyButton"
                component={CopyButton}
                props={{ text: createdInvite.code, label: "Copy code" }}
              />
            </div>
          </div>
          <div>
            <label for="new-invite-link">Sign-up link</label>
            <div class="copy-row">
              <input
                id="new-invite-link"
                class="code-input"
                type="text"
                readOnly
                value={createdInvite.signupUrl}
              />
              <Island
                name="CopyButton"
                component={CopyButton}
                props={{ text: createdInvite.signupUrl, label: "Copy link" }}
              />
            </div>
          </div>
        </div>
      )}

      <h3 class="subheading">New invite</h3>
      <FormError
        message={errors?.days || errors?.note ? "The invite was not created. See below." : null}
      />
      <PostForm action="/dashboard/admin/invites" class="stack" label="New invite" noValidate>
        <Field
          id="invite-days"
          name="expires_in_days"
          label="Expires after (days)"
          type="number"
          value={inviteForm?.days ?? String(INVITE_DEFAULT_DAYS)}
          hint={`${INVITE_MIN_DAYS} to ${INVITE_MAX_DAYS} days.`}
          error={errors?.days}
          required
        />
        <Field
          id="invite-note"
          name="note"
          label="Note (optional)"
          value={inviteForm?.note}
          hint={`Whom it is for, say. Only administrators see it. At most ${INVITE_NOTE_MAX_LENGTH} characters.`}
          error={errors?.note}
          maxLength={INVITE_NOTE_MAX_LENGTH}
        />
        <div>
          <button type="submit" class="button button-primary">Create invite</button>
        </div>
      </PostForm>

      <h3 class="subheading">All invites</h3>
      {invites.rows.length === 0 ? <p class="empty">No invites yet.</p> : (
        <div class="table-wrap">
          <table class="table">
            <caption class="visually-hidden">Invites, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Note</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Used by</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {invites.rows.map((i) => {
                const name = i.note ?? `the invite of ${i.created_at}`;
                return (
                  <tr key={i.id} data-invite-id={i.id}>
                    <th scope="row" class="cell-min">
                      {i.note ?? <span class="muted">(no note)</span>}
                    </th>
                    <td>
                      <span class={inviteBadge[i.status].class} data-status={i.status}>
                        {inviteBadge[i.status].label}
                      </span>
                    </td>
                    <td>
                      <Time at={i.created_at} />
                    </td>
                    <td>
                      <Time at={i.expires_at} />
                    </td>
                    <td>
                      {i.used_at
                        ? (
                          <>
                            {i.used_by_email ?? <span class="muted">(deleted user)</span>}
                            <br />
                            <Time at={i.used_at} />
                          </>
                        )
                        : <span class="muted">—</span>}
                    </td>
                    <td>
                      {i.status === "active"
                        ? (
                          <PostForm
                            action={`/dashboard/admin/invites/${i.id}/revoke`}
                            class="inline-form"
                            label={`Revoke ${name}`}
                          >
                            <button type="submit" class="button button-small button-danger">
                              Revoke<span class="visually-hidden">{name}</span>
                            </button>
                          </PostForm>
                        )
                        : <span class="muted">—</span>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {invites.next && (
        <p>
          <a href={`/dashboard/admin?invites=${encodeURIComponent(invites.next)}#invites`}>
            Older invites
          </a>
        </p>
      )}
    </section>
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
