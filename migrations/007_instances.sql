-- Running app instances and their heartbeats. A project in a transitional state records the
-- instance doing the work (worker_id); when that instance stops beating (killed, crashed),
-- the reconciler of any live instance finishes or fails the work at once, without waiting
-- for the state's deadline.
CREATE TABLE instances (
  id uuid PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE projects ADD COLUMN worker_id uuid;
