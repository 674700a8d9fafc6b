-- When the backup job last tried a project, so a failing backup is retried next round
-- without claiming a success in last_backup_at.
ALTER TABLE projects ADD COLUMN backup_attempted_at timestamptz;
