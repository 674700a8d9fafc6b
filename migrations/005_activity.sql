-- idle_timeout_minutes: NULL means IDLE_THRESHOLD_MINUTES; 0 means never auto-stop (admins only).
ALTER TABLE projects ADD CONSTRAINT projects_idle_timeout_range
  CHECK (idle_timeout_minutes IS NULL OR idle_timeout_minutes = 0
         OR idle_timeout_minutes BETWEEN 5 AND 480);
