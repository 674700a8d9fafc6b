-- Single-use terminal tickets: what the dashboard puts in the WebSocket URL instead of a
-- long-lived token. Only the SHA-256 of a ticket is stored; a ticket is bound to one user,
-- one project and (when issued to a login session) that session, and lives 60 seconds.
CREATE TABLE terminal_tickets (
  token_hash text PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
-- Spent and expired tickets are pruned by age.
CREATE INDEX terminal_tickets_expiry ON terminal_tickets (expires_at);
