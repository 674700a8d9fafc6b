-- One id per Pomodex installation (per database). Engine resources carry it as a label,
-- so the reconciler only ever touches its own installation's containers and volumes,
-- even when several installations (or test runs) share one engine.
CREATE TABLE installation (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;
