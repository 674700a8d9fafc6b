-- Users, login sessions and their refresh tokens, projects and the audit log.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  password_hash text NOT NULL,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  project_quota integer CHECK (project_quota >= 0),
  disabled_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One row a login; revoking it kills its refresh tokens and its access tokens (sid claim).
CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'browser')),
  ip text,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_reason text
);
CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  rotated_at timestamptz,
  replaced_by uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
  status text NOT NULL DEFAULT 'creating' CHECK (
    status IN ('creating', 'running', 'snapshotting', 'stopped', 'restoring', 'deleting', 'error')
  ),
  status_reason text,
  status_changed_at timestamptz NOT NULL DEFAULT now(),
  -- engine resources, named after the project so a retry or the reconciler can find them
  container_id text,
  container_name text,
  volume_name text,
  ssh_host_port integer,
  ssh_public_key text NOT NULL,
  ssh_private_key_encrypted text,
  -- cloud identity (Google Cloud mode only)
  gcp_sa_email text,
  gcp_sa_key_encrypted text,
  gcs_prefix text NOT NULL,
  snapshot_image text,
  snapshot_size_bytes bigint,
  last_snapshot_at timestamptz,
  last_backup_at timestamptz,
  last_backup_size_bytes bigint,
  idle_timeout_minutes integer CHECK (idle_timeout_minutes IS NULL OR idle_timeout_minutes >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_active_at timestamptz NOT NULL DEFAULT now(),
  last_activity_source text NOT NULL DEFAULT 'created',
  last_connection_at timestamptz
);
CREATE INDEX projects_owner_newest ON projects (user_id, created_at DESC, id DESC);
CREATE INDEX projects_running_by_activity ON projects (last_active_at) WHERE status = 'running';
CREATE INDEX projects_in_transition ON projects (status_changed_at)
  WHERE status IN ('creating', 'snapshotting', 'restoring', 'deleting');

CREATE TABLE audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  event text NOT NULL,
  user_id uuid,
  actor_id uuid,
  project_id uuid,
  ip text,
  request_id text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_user_at ON audit_log (user_id, at DESC);
CREATE INDEX audit_log_project_at ON audit_log (project_id, at DESC) WHERE project_id IS NOT NULL;
