-- Tenant isolation. Each project's sandbox lives on its own network, one /28 of
-- SANDBOX_SUBNET_POOL chosen by its slot; on Podman the slot also picks the host uid range its
-- root maps to. A slot is held for the project's whole life, so a restored sandbox keeps its
-- address (the egress proxy knows the project by it) and the owner of its workspace files.
ALTER TABLE projects ADD COLUMN sandbox_slot integer CHECK (sandbox_slot >= 0);
CREATE UNIQUE INDEX projects_sandbox_slot ON projects (sandbox_slot);

-- Egress: NULL follows EGRESS_DEFAULT_POLICY; the allowlist holds domains (each also covers
-- its subdomains).
ALTER TABLE projects ADD COLUMN egress_policy text
  CHECK (egress_policy IN ('open', 'allowlist', 'none'));
ALTER TABLE projects ADD COLUMN egress_allowlist text[] NOT NULL DEFAULT '{}';

-- Disk use as last measured (the API shows it for stopped projects too).
ALTER TABLE projects ADD COLUMN workspace_used_bytes bigint;
ALTER TABLE projects ADD COLUMN rootfs_used_bytes bigint;
ALTER TABLE projects ADD COLUMN disk_measured_at timestamptz;
