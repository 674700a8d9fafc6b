-- Invite codes for REGISTRATION=invite. An administrator makes one; it lets one person sign
-- up, once, before it expires. Only the SHA-256 of the code is kept (the code is shown once).
-- used_at and revoked_at exclude each other: a used code cannot be revoked, a revoked one
-- cannot be used (both are conditional UPDATEs, so a race between them has one winner).
CREATE TABLE invites (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code_hash text NOT NULL UNIQUE,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  note text CHECK (length(note) BETWEEN 1 AND 200),
  used_by uuid REFERENCES users (id) ON DELETE SET NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  CHECK (expires_at > created_at),
  CHECK (used_by IS NULL OR used_at IS NOT NULL),
  CHECK (used_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invites_newest ON invites (created_at DESC, id DESC);
