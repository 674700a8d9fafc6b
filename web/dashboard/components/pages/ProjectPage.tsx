import CopyButton from "@/web/dashboard/islands/CopyButton.tsx";
import ProjectStatus from "@/web/dashboard/islands/ProjectStatus.tsx";
import Terminal from "@/web/dashboard/islands/Terminal.tsx";
import { formatBytes } from "@/shared/format.ts";
import { isTransitional } from "@/shared/status.ts";
import { usePage } from "@/web/dashboard/page-context.ts";
import type { ProjectDetails } from "@/web/dashboard/projects.ts";
import { Field, PostForm } from "@/web/dashboard/components/Form.tsx";
import { Island } from "@/web/dashboard/components/Island.tsx";
import { Layout } from "@/web/dashboard/components/Layout.tsx";
import { Time } from "@/web/dashboard/components/Time.tsx";

export interface BackupSummary {
  count: number;
  /** False when the backup store could not be listed just now. */
  available: boolean;
}

/** After a refused change of network access: what was sent and why it was refused. */
export interface EgressForm {
  policy: string;
  allowlist: string;
  error: string;
}

export interface ProjectPageProps {
  project: ProjectDetails;
  backups: BackupSummary;
  backupIntervalMinutes: number;
  /** After a refused delete: what was typed and why it was refused. */
  deleteForm?: { typed: string; error: string };
  egressForm?: EgressForm;
}

export function ProjectPage(
  { project: p, backups, backupIntervalMinutes, deleteForm, egressForm }: ProjectPageProps,
) {
  const base = `/dashboard/projects/${p.id}`;
  const busy = isTransitional(p.status);
  return (
    <Layout title={p.name} autoRefreshWithoutJs={busy}>
      <nav aria-label="Breadcrumb" class="breadcrumb">
        <a href="/dashboard">Projects</a> <span aria-hidden="true">/</span>{" "}
        <span aria-current="page">{p.name}</span>
      </nav>
      <div class="page-head">
        <h1>{p.name}</h1>
        <Island
          name="ProjectStatus"
          component={ProjectStatus}
          props={{ id: p.id, status: p.status }}
        />
      </div>
      {p.status === "error" && p.status_reason && (
        <p class="alert alert-error">
          <strong>What went wrong:</strong> {p.status_reason}
        </p>
      )}
      {p.status !== "error" && p.status_reason && <p class="alert alert-info">{p.status_reason}</p>}

      <section aria-labelledby="actions" class="card">
        <h2 id="actions">Actions</h2>
        <Actions base={base} status={p.status} />
      </section>

      <div class="grid-2">
        <section aria-labelledby="connect" class="card">
          <h2 id="connect">Connect with SSH</h2>
          <SshAccess project={p} base={base} />
        </section>
        <section aria-labelledby="activity" class="card">
          <h2 id="activity">Activity and auto-stop</h2>
          <AutoStop project={p} />
        </section>
      </div>

      {p.status === "running" && <TerminalSection projectId={p.id} />}

      <div class="grid-2">
        <section aria-labelledby="details" class="card">
          <h2 id="details">Details</h2>
          <dl class="facts">
            <dt>Created</dt>
            <dd>
              <Time at={p.created_at} relative />
            </dd>
            <dt>Status since</dt>
            <dd>
              <Time at={p.status_changed_at} relative />
            </dd>
            <dt>Last terminal connection</dt>
            <dd>
              <Time at={p.last_connection_at} />
            </dd>
            <dt>Project ID</dt>
            <dd>
              <code>{p.id}</code>
            </dd>
          </dl>
        </section>
        <section aria-labelledby="backups" class="card">
          <h2 id="backups">Backups and snapshots</h2>
          <dl class="facts">
            <dt>Latest workspace backup</dt>
            <dd>
              {p.last_backup_at
                ? (
                  <>
                    <Time at={p.last_backup_at} relative /> ·{" "}
                    {formatBytes(p.last_backup_size_bytes)}
                  </>
                )
                : "None yet"}
            </dd>
            <dt>Backups kept</dt>
            <dd>{backups.available ? backups.count : "Unavailable right now"}</dd>
            <dt>Latest snapshot</dt>
            <dd>
              {p.last_snapshot_at
                ? (
                  <>
                    <Time at={p.last_snapshot_at} relative /> · {formatBytes(p.snapshot_size_bytes)}
                  </>
                )
                : "None yet"}
            </dd>
            {p.snapshot_image && (
              <>
                <dt>Snapshot image</dt>
                <dd>
                  <code class="wrap">{p.snapshot_image}</code>
                </dd>
              </>
            )}
          </dl>
          <p class="hint">
            A running project's workspace is backed up every {backupIntervalMinutes}{" "}
            minutes and before it stops; stopping also saves a snapshot of the whole container,
            which starting brings back.
          </p>
        </section>
      </div>

      <div class="grid-2">
        <section aria-labelledby="network" class="card">
          <h2 id="network">Network access</h2>
          <EgressSettings project={p} base={base} form={egressForm} />
        </section>
        <section aria-labelledby="disk" class="card">
          <h2 id="disk">Disk</h2>
          <DiskUse project={p} />
        </section>
      </div>

      <section aria-labelledby="danger" class="card card-danger">
        <h2 id="danger">Delete this project</h2>
        <p>
          Deleting removes the container, the workspace, every snapshot and every backup. It cannot
          be undone.
        </p>
        <PostForm action={`${base}/delete`} class="stack" label="Delete project" noValidate>
          <Field
            id="confirm-name"
            name="confirm"
            label={`Type the project name, ${p.name}, to confirm`}
            value={deleteForm?.typed}
            error={deleteForm?.error}
            autocomplete="off"
            spellcheck={false}
            required
          />
          <button type="submit" class="button button-danger" disabled={busy}>
            Delete project
          </button>
        </PostForm>
      </section>
    </Layout>
  );
}

function Actions({ base, status }: { base: string; status: string }) {
  if (status === "running") {
    return (
      <>
        <div class="button-row">
          <ActionButton action={`${base}/stop`} label="Stop" primary />
          <ActionButton action={`${base}/snapshot`} label="Snapshot" />
        </div>
        <p class="hint">
          Both save a snapshot of the container and then stop it; the workspace is kept. Start
          brings it back.
        </p>
      </>
    );
  }
  if (status === "stopped" || status === "error") {
    return (
      <>
        <div class="button-row">
          <ActionButton action={`${base}/start`} label="Start" primary />
          <ActionButton action={`${base}/restore`} label="Restore" />
        </div>
        <p class="hint">
          Both bring the project back from its latest snapshot (or the base image if there is none)
          with its workspace.
        </p>
      </>
    );
  }
  return (
    <p>
      The project is busy. Actions come back when it is done; this page follows along.
    </p>
  );
}

function ActionButton(props: { action: string; label: string; primary?: boolean }) {
  return (
    <PostForm action={props.action} class="inline-form" label={props.label}>
      <button type="submit" class={props.primary ? "button button-primary" : "button"}>
        {props.label}
      </button>
    </PostForm>
  );
}

function SshAccess({ project: p, base }: { project: ProjectDetails; base: string }) {
  return (
    <>
      {p.ssh_command
        ? (
          <>
            <label for="ssh-command">SSH command</label>
            <div class="copy-row">
              <input
                id="ssh-command"
                class="code-input"
                type="text"
                readOnly
                value={p.ssh_command}
              />
              <Island
                name="CopyButton"
                component={CopyButton}
                props={{ text: p.ssh_command, label: "Copy command" }}
              />
            </div>
            <p class="hint">
              User <code>{p.ssh_user}</code>, host <code>{p.ssh_host}</code>, port{" "}
              <code>{p.ssh_port}</code>. The port changes when the project restarts.
            </p>
          </>
        )
        : <p>SSH is available while the project is running.</p>}
      {p.has_private_key
        ? (
          <div class="key-download">
            <p class="alert alert-warning">
              <strong>Keep this key secret.</strong>{" "}
              Anyone with the private key can log in to this project. Do not share it or commit it.
              Save it as <code>~/.ssh/{p.key_file}</code> and run <code>chmod 600</code> on it.
            </p>
            <a class="button" href={`${base}/key`} download>
              Download private key
            </a>
          </div>
        )
        : <p class="hint">This project uses the public key you gave when creating it.</p>}
    </>
  );
}

const activitySources: Record<string, string> = {
  terminal: "the web terminal",
  ssh: "an SSH session",
  api: "an API call",
  created: "its creation (nothing has used it since)",
};

function AutoStop({ project: p }: { project: ProjectDetails }) {
  const source = activitySources[p.last_activity_source] ?? p.last_activity_source;
  return (
    <>
      <dl class="facts">
        <dt>Last activity</dt>
        <dd>
          <Time at={p.last_activity_at} relative /> from {source}
        </dd>
        <dt>Auto-stop</dt>
        <dd>
          {p.status !== "running"
            ? "Only applies while the project is running"
            : p.idle_timeout_minutes === null
            ? "Off: it runs until you stop it"
            : (
              <>
                <Time at={p.auto_stop_at} relative />
              </>
            )}
        </dd>
      </dl>
      {p.status === "running" && p.idle_timeout_minutes !== null && (
        <p class="hint" id="why-running">
          It keeps running while it is used: a terminal or SSH session, or API calls on it. After
          {" "}
          {p.idle_timeout_minutes}{" "}
          minutes without any, it is snapshotted and stopped, and the time above moves on with every
          use.
        </p>
      )}
    </>
  );
}

const egressChoices = [
  { value: "open", label: "The internet", hint: "Any public address, directly or by proxy." },
  {
    value: "allowlist",
    label: "Only the domains listed below",
    hint: "HTTP and HTTPS through the proxy, to these domains and their subdomains.",
  },
  { value: "none", label: "Nothing", hint: "No connection leaves the sandbox." },
] as const;

function EgressSettings(
  { project: p, base, form }: { project: ProjectDetails; base: string; form?: EgressForm },
) {
  const chosen = form?.policy ?? p.egress.policy;
  const degraded = p.egress.policy !== p.egress_policy;
  return (
    <PostForm action={`${base}/egress`} class="stack" label="Network access" noValidate>
      {degraded && (
        <p class="alert alert-info">
          This installation no longer allows open access: the list below applies instead.
        </p>
      )}
      <fieldset class="choices">
        <legend>What may the sandbox reach?</legend>
        {egressChoices.map((choice) => {
          const disabled = choice.value === "open" && !p.egress.open_allowed;
          return (
            <div class="choice">
              <input
                type="radio"
                id={`egress-${choice.value}`}
                name="policy"
                value={choice.value}
                checked={chosen === choice.value}
                disabled={disabled}
                aria-describedby={`egress-${choice.value}-hint`}
              />
              <label for={`egress-${choice.value}`}>{choice.label}</label>
              <p class="hint" id={`egress-${choice.value}-hint`}>
                {disabled ? "Not allowed on this installation." : choice.hint}
              </p>
            </div>
          );
        })}
      </fieldset>
      <div class={`field${form?.error ? " field-invalid" : ""}`}>
        <label for="egress-allowlist">Allowed domains</label>
        <p class="hint" id="egress-allowlist-hint">
          One a line, like <code>github.com</code>; each covers its subdomains.
        </p>
        {form?.error && (
          <p class="field-error" id="egress-allowlist-error">
            <span aria-hidden="true">⚠</span> {form.error}
          </p>
        )}
        <textarea
          id="egress-allowlist"
          name="allowlist"
          rows={4}
          spellcheck={false}
          aria-invalid={form?.error ? "true" : undefined}
          aria-describedby={form?.error
            ? "egress-allowlist-hint egress-allowlist-error"
            : "egress-allowlist-hint"}
        >
          {form?.allowlist ?? p.egress.allowlist.join("\n")}
        </textarea>
      </div>
      <button type="submit" class="button">Save network access</button>
      <p class="hint">
        Never reachable, whatever you choose: this host, other projects, private and link-local
        addresses. Changes reach a running sandbox within seconds.
      </p>
    </PostForm>
  );
}

function DiskUse({ project: p }: { project: ProjectDetails }) {
  const of = (used: number | null, limit: number) =>
    used === null
      ? `not measured yet, of ${formatBytes(limit)}`
      : `${formatBytes(used)} of ${formatBytes(limit)}`;
  return (
    <>
      <dl class="facts">
        <dt>Workspace (/home/agent)</dt>
        <dd>{of(p.disk.workspace_used_bytes, p.disk.workspace_limit_bytes)}</dd>
        <dt>Everything else it wrote</dt>
        <dd>{of(p.disk.rootfs_used_bytes, p.disk.rootfs_limit_bytes)}</dd>
        <dt>Measured</dt>
        <dd>
          <Time at={p.disk.measured_at} relative />
        </dd>
      </dl>
      <p class="hint">
        A full workspace answers "No space left on device" inside the sandbox. Installing packages
        writes outside it; a project past that bound is stopped with a snapshot.
      </p>
    </>
  );
}

function TerminalSection({ projectId }: { projectId: string }) {
  const { styleNonce } = usePage();
  return (
    <section aria-labelledby="terminal" class="terminal-section">
      <h2 id="terminal">Terminal</h2>
      <Island name="Terminal" component={Terminal} props={{ projectId, styleNonce }} />
      <noscript>
        {/* Without JavaScript the island stays an empty box: hide it, say why. */}
        <style nonce={styleNonce}>{".terminal-section .island { display: none; }"}</style>
        <p class="alert alert-info">
          The web terminal needs JavaScript. The SSH command above works without it.
        </p>
      </noscript>
    </section>
  );
}
