-- Auth: signing keys, server secrets, rate-limit counters, personal API keys, M2M clients.

-- JWT signing keys. The private half is sealed with the master key (AES-GCM); a key supplied
-- by JWT_PRIVATE_KEY keeps only its public half here, so retired keys still verify.
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL DEFAULT 'RS256' CHECK (alg = 'RS256'),
  public_jwk jsonb NOT NULL,
  private_key_sealed text,
  source text NOT NULL CHECK (source IN ('generated', 'environment')),
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  CHECK (source = 'environment' OR private_key_sealed IS NOT NULL)
);
-- At most one active key, whatever races happen between instances.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE retired_at IS NULL;

-- Server-side secrets generated once and shared by every instance (sealed, never plaintext).
CREATE TABLE auth_secrets (
  name text PRIMARY KEY,
  sealed text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Fixed windows per (bucket, key); the limiter weighs the previous window in (sliding
-- estimate). Rows expire after two windows and are pruned.
CREATE TABLE rate_limit_counters (
  bucket text NOT NULL,
  key text NOT NULL,
  window_start timestamptz NOT NULL,
  count integer NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (bucket, key, window_start)
);
CREATE INDEX rate_limit_counters_expiry ON rate_limit_counters (expires_at);

-- Personal, time-limited API keys ("pdx_..."): only their SHA-256 is stored.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  key_hash text NOT NULL UNIQUE,
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_user_newest ON api_keys (user_id, created_at DESC);

-- Machine-to-machine clients (client_credentials). They act on behalf of user_id.
CREATE TABLE api_clients (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  secret_hash text NOT NULL,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  scopes text[] NOT NULL,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  disabled_at timestamptz
);

-- Security reviews read the log by event ("every failed login this week").
CREATE INDEX audit_log_event_at ON audit_log (event, at DESC);
