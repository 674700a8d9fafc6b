import { recordAudit } from "@/infra/audit.ts";
import { type Actor, auditOf } from "@/core/actor.ts";
import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError, validationError } from "@/core/errors.ts";
import { slotOfAddress } from "@/infra/network/subnets.ts";
import { applyDirectEgress, type Isolation } from "./isolation.ts";
import { egressPolicyInSlot, egressPolicyOf, setEgressPolicy } from "./queries.ts";
import type { ProjectRow } from "./rows.ts";
import { isUuid } from "@/core/ids.ts";

/**
 * What a sandbox may reach beyond its own network (never the host, other sandboxes,
 * link-local or private ranges: the firewall sees to that whatever the policy):
 * - open: the public internet, directly and through the proxy;
 * - allowlist: HTTP (port 80) and HTTPS (CONNECT to 443) through the proxy, to the listed
 *   domains and their subdomains only;
 * - none: nothing.
 */
export const egressPolicies = ["open", "allowlist", "none"] as const;
export type EgressPolicy = typeof egressPolicies[number];

export const MAX_ALLOWLIST_ENTRIES = 100;

type EgressConfig = Config["egress"];
type EgressRow = Pick<ProjectRow, "egressPolicy" | "egressAllowlist">;

/** The policy that holds now: the project's, or the default; "open" degrades where forbidden. */
export function effectivePolicy(row: EgressRow, egress: EgressConfig): EgressPolicy {
  const policy = row.egressPolicy ?? egress.defaultPolicy;
  return policy === "open" && !egress.allowOpen ? "allowlist" : policy;
}

export function egressView(row: EgressRow, egress: EgressConfig) {
  return {
    policy: row.egressPolicy ?? egress.defaultPolicy,
    allowlist: row.egressAllowlist,
    effective_policy: effectivePolicy(row, egress),
    default_policy: egress.defaultPolicy,
    open_allowed: egress.allowOpen,
  };
}

/** May a sandbox under this policy open `method` to host:port through the proxy? */
export function mayReach(
  policy: EgressPolicy,
  allowlist: string[],
  target: { host: string; port: number; method: string },
): boolean {
  if (policy === "open") return true;
  if (policy === "none") return false;
  const https = target.method === "CONNECT" && target.port === 443;
  const http = target.method !== "CONNECT" && target.port === 80;
  if (!https && !http) return false;
  const host = target.host.toLowerCase().replace(/\.$/, "");
  return allowlist.some((domain) => host === domain || host.endsWith(`.${domain}`));
}

/** A domain as the allowlist keeps it: lower case, ASCII (IDNs as punycode), no dot at the end. */
export function normalizeDomain(raw: unknown, index: number): string {
  const path = `allowlist.${index}`;
  const bad = () =>
    validationError([
      {
        path,
        message: `${JSON.stringify(raw)} is not a domain name (no addresses, ports or paths)`,
      },
    ]);
  if (typeof raw !== "string") throw bad();
  const text = raw.trim().replace(/^\*\./, "").replace(/\.$/, "");
  if (!text || /[/:?#@\s[\]\\%]/.test(text)) throw bad();
  let host: string;
  try {
    host = new URL(`http://${text}/`).hostname;
  } catch {
    throw bad();
  }
  const labels = host.split(".");
  const valid = host.length <= 253 && labels.length >= 2 && !/^\d+$/.test(labels.at(-1)!) &&
    labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
  if (!valid) throw bad();
  return host;
}

export function parseEgressInput(
  input: { policy: unknown; allowlist?: unknown },
  egress: EgressConfig,
): { policy: EgressPolicy; allowlist: string[] | undefined } {
  if (!egressPolicies.includes(input.policy as EgressPolicy)) {
    throw validationError([{ path: "policy", message: "must be open, allowlist or none" }]);
  }
  const policy = input.policy as EgressPolicy;
  if (policy === "open" && !egress.allowOpen) {
    throw new AppError(
      "egress_open_forbidden",
      403,
      "This installation does not allow open egress; use an allowlist",
    );
  }
  if (input.allowlist === undefined) return { policy, allowlist: undefined };
  if (!Array.isArray(input.allowlist)) {
    throw validationError([{ path: "allowlist", message: "must be a list of domains" }]);
  }
  if (input.allowlist.length > MAX_ALLOWLIST_ENTRIES) {
    throw validationError([
      { path: "allowlist", message: `at most ${MAX_ALLOWLIST_ENTRIES} domains` },
    ]);
  }
  return { policy, allowlist: [...new Set(input.allowlist.map(normalizeDomain))] };
}

/**
 * Sets the project's policy. The proxy asks the API for every new destination (answers are
 * kept EGRESS_DECISION_TTL_SECONDS), and the firewall's direct route changes at once, so the
 * change holds within seconds on a running sandbox, without a restart.
 */
export async function setEgress(
  deps: { sql: Sql; config: Config; isolation: Isolation },
  actor: Actor,
  row: ProjectRow,
  input: { policy: unknown; allowlist?: unknown },
): Promise<ProjectRow> {
  const parsed = parseEgressInput(input, deps.config.egress);
  const updated = await setEgressPolicy(deps.sql, row.id, actor.userId, {
    policy: parsed.policy,
    allowlist: parsed.allowlist ?? row.egressAllowlist,
  });
  if (!updated) throw new AppError("not_found", 404, "Project not found");
  if (updated.sandboxSlot !== null) {
    const open = effectivePolicy(updated, deps.config.egress) === "open";
    await applyDirectEgress(deps, updated.sandboxSlot, open);
  }
  await recordAudit(deps.sql, {
    event: "project.egress_changed",
    ...auditOf(actor),
    projectId: row.id,
    details: { policy: parsed.policy, allowlist: updated.egressAllowlist },
  });
  return updated;
}

/** The proxy's question: may the sandbox at `source` reach this target? */
export async function egressDecision(
  deps: { sql: Sql; config: Config; isolation: Isolation },
  source: string,
  target: { host: string; port: number; method: string },
): Promise<boolean> {
  const slot = slotOfAddress(deps.isolation.pool, source);
  if (slot === null) return false;
  const row = await egressPolicyInSlot(deps.sql, slot);
  if (!row) return false;
  return mayReach(effectivePolicy(row, deps.config.egress), row.egressAllowlist, target);
}

const aclNames = { open: "allow-all", allowlist: "allow-list", none: "deny-all" } as const;

/** The seeds' /internal/acl shape of a project's policy; null when there is no such project. */
export async function aclOf(deps: { sql: Sql; config: Config }, projectId: string) {
  if (!isUuid(projectId)) return null;
  const row = await egressPolicyOf(deps.sql, projectId);
  if (!row) return null;
  const policy = effectivePolicy(row, deps.config.egress);
  return {
    project_id: row.id,
    egress: aclNames[policy],
    policy,
    allowed_hosts: policy === "allowlist" ? row.egressAllowlist : [],
  };
}
