import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { DockerClient } from "@/infra/docker/mod.ts";
import { AppError } from "@/core/errors.ts";
import { type WorkspaceLayout, workspaceLayout } from "@/infra/host/workspace.ts";
import type { Logger } from "@/core/log.ts";
import {
  FirewallError,
  installFirewall,
  nameserversOf,
  setDirectEgress,
} from "@/infra/network/firewall.ts";
import {
  parsePool,
  type SlotNetwork,
  slotNetwork,
  type SubnetPool,
} from "@/infra/network/subnets.ts";
import {
  firstFreeSandboxSlot,
  releaseSandboxSlot,
  sandboxSlotOf,
  setSandboxSlot,
} from "./queries.ts";
import { installationLabel, networkNameOf, projectLabel } from "./rows.ts";

/** What keeps one tenant's sandbox from the others and from the host (docs/ISOLATION.md). */
export interface Isolation {
  pool: SubnetPool;
  workspaces: WorkspaceLayout;
  /** Why the host firewall is not in place, or null when it is (or is turned off). */
  firewallError: string | null;
  firewallEnabled: boolean;
  /** Set once the egress proxy listens; sandboxes then get it as their HTTP(S) proxy. */
  proxyPort: number | null;
}

export const slotLabel = "pomodex.slot";

const AGENT_UID = 1000;

export const isolationUnavailable = (why: string) =>
  new AppError("isolation_unavailable", 503, `Sandboxes cannot be isolated here: ${why}`);

/**
 * At start: the workspace directory, and the host firewall (installed now; a failure is
 * remembered and every sandbox start refuses with it, so nothing runs unprotected).
 */
export async function prepareIsolation(config: Config, log: Logger): Promise<Isolation> {
  const c = config.isolation;
  const workspaces = await workspaceLayout(c.workspaceDir, c.workspaceDiskGb);
  let firewallError: string | null = null;
  if (c.firewall === "nftables") {
    try {
      const resolvConf = await Deno.readTextFile("/etc/resolv.conf").catch(() => "");
      await installFirewall({
        allowedRanges: c.allowedRanges,
        dnsServers: nameserversOf(resolvConf),
      });
    } catch (err) {
      firewallError = err instanceof FirewallError ? err.message : String(err);
      log.error("isolation: the sandbox firewall could not be installed; no sandbox will start", {
        error: firewallError,
      });
    }
  } else {
    log.warn("isolation: SANDBOX_FIREWALL=off: sandboxes reach the host and each other");
  }
  return {
    pool: parsePool(c.subnetPool),
    workspaces,
    firewallError,
    firewallEnabled: c.firewall === "nftables",
    proxyPort: null,
  };
}

/**
 * Refuses (503 isolation_unavailable) before anything is made when this host cannot isolate
 * a sandbox: no firewall, or an engine without the user namespace SANDBOX_USERNS requires.
 */
export async function assertIsolationReady(deps: IsolationDeps): Promise<void> {
  if (deps.isolation.firewallError) throw isolationUnavailable(deps.isolation.firewallError);
  await usernsFor(deps).catch((err) => {
    // An engine that does not answer fails the create or start where it is used, as a 502.
    if (err instanceof AppError) throw err;
  });
}

interface IsolationDeps {
  sql: Sql;
  engine: DockerClient;
  config: Config;
  installationId: string;
  isolation: Isolation;
}

/**
 * The project's network, made on first use: a /28 of the pool (its slot, held for the
 * project's life) on a bridge named after the slot. A slot whose subnet or bridge another
 * installation on this engine uses is skipped.
 */
export async function ensureProjectNetwork(
  deps: IsolationDeps,
  projectId: string,
): Promise<SlotNetwork> {
  const name = networkNameOf(projectId);
  const skipped: number[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const slot = await slotOf(deps, projectId, skipped);
    const net = slotNetwork(deps.isolation.pool, slot);
    const existing = await deps.engine.inspectNetwork(name);
    if (existing?.IPAM?.Config?.some((c) => c.Subnet === net.subnet)) return net;
    if (existing) await deps.engine.removeNetwork(name);
    try {
      await deps.engine.createNetwork({
        Name: name,
        Driver: "bridge",
        IPAM: { Config: [{ Subnet: net.subnet, Gateway: net.gateway }] },
        Options: { "com.docker.network.bridge.name": net.bridge },
        Labels: {
          [installationLabel]: deps.installationId,
          [projectLabel]: projectId,
          [slotLabel]: String(slot),
        },
      });
      return net;
    } catch (err) {
      if ((err as { status?: number }).status !== 409) throw err;
      // Taken outside our records: give the slot back and take another.
      skipped.push(slot);
      await releaseSandboxSlot(deps.sql, projectId);
    }
  }
  throw new Error("no free sandbox network after 5 tries");
}

async function slotOf(deps: IsolationDeps, projectId: string, skipped: number[]) {
  const row = await sandboxSlotOf(deps.sql, projectId);
  if (!row) throw new Error("the project is gone");
  if (row.sandboxSlot !== null) return row.sandboxSlot;
  // Slots held on this engine by any installation (their networks carry the label).
  const onEngine = (await deps.engine.listNetworks({ labels: { [slotLabel]: "" } }))
    .map((n) => Number(n.Labels?.[slotLabel]))
    .filter(Number.isInteger);
  const excluded = [...onEngine, ...skipped, -1];
  for (let attempt = 0; attempt < 5; attempt++) {
    const free = await firstFreeSandboxSlot(deps.sql, deps.isolation.pool.slots, excluded);
    if (free === null) {
      throw new AppError(
        "capacity_exhausted",
        503,
        "Every sandbox network of SANDBOX_SUBNET_POOL is in use; delete a project or widen the pool",
      );
    }
    try {
      const claimed = await setSandboxSlot(deps.sql, projectId, free);
      if (claimed !== null) return claimed;
      return await slotOf(deps, projectId, skipped); // another request gave it one meanwhile
    } catch (err) {
      // Another project took that slot a moment ago (unique index): take the next one.
      if ((err as { code?: string }).code !== "23505") throw err;
      excluded.push(free);
    }
  }
  throw new Error("could not claim a sandbox slot");
}

/** Puts the project's subnet in or out of the firewall's set of direct-egress networks. */
export async function applyDirectEgress(
  deps: Pick<IsolationDeps, "isolation">,
  slot: number,
  open: boolean,
): Promise<void> {
  if (!deps.isolation.firewallEnabled || deps.isolation.firewallError) return;
  await setDirectEgress(slotNetwork(deps.isolation.pool, slot).subnet, open);
}

/** How root inside a sandbox maps to the host. */
export interface UsernsPlan {
  /** The host uid of `agent` (uid 1000 inside): the owner of the workspace's root. */
  agentHostUid: number;
}

const engineKinds = new WeakMap<DockerClient, Promise<{ podman: boolean; remapBase?: number }>>();

/**
 * Docker's --userns-remap maps every container's root to one unprivileged host range, and
 * commits, pushes and restores them correctly. Podman 4.3 (Debian 12) can run a container
 * in a user namespace but commits its files with the host's ids, so a snapshot would not
 * start again (docs/ISOLATION.md): there the user namespace is refused unless the operator
 * turns the requirement off (SANDBOX_USERNS=off), and the sandbox runs as before.
 */
export async function usernsFor(
  deps: Pick<IsolationDeps, "engine" | "config">,
): Promise<UsernsPlan> {
  if (deps.config.isolation.userns === "off") return { agentHostUid: AGENT_UID };
  const kind = await engineKindOf(deps.engine);
  if (kind.podman) {
    throw isolationUnavailable(
      "Podman cannot snapshot a sandbox that runs in a user namespace, so root in it would " +
        "be root on the host; use Docker with --userns-remap (scripts/setup-docker.sh), or " +
        "set SANDBOX_USERNS=off on a machine you do not share (docs/ISOLATION.md)",
    );
  }
  if (kind.remapBase === undefined) {
    throw isolationUnavailable(
      "Docker runs without --userns-remap, so root in a sandbox would be root on the host " +
        "(docs/ENGINE.md shows how to turn it on; SANDBOX_USERNS=off accepts the risk)",
    );
  }
  return { agentHostUid: kind.remapBase + AGENT_UID };
}

function engineKindOf(engine: DockerClient) {
  let kind = engineKinds.get(engine);
  if (!kind) {
    kind = (async () => {
      const version = await engine.version();
      if (version.Components?.some((c) => /podman/i.test(c.Name))) return { podman: true };
      const info = await engine.info();
      const remapped = info.SecurityOptions?.some((o) => o.includes("name=userns"));
      return { podman: false, remapBase: remapped ? await dockremapBase() : undefined };
    })();
    kind.catch(() => engineKinds.delete(engine));
    engineKinds.set(engine, kind);
  }
  return kind;
}

/** Docker's --userns-remap=default maps root to the first uid of `dockremap` in /etc/subuid. */
async function dockremapBase(): Promise<number> {
  const subuid = await Deno.readTextFile("/etc/subuid").catch(() => "");
  const line = subuid.split("\n").find((l) => l.startsWith("dockremap:"));
  const base = Number(line?.split(":")[1]);
  if (!Number.isInteger(base)) {
    throw isolationUnavailable("Docker remaps users but /etc/subuid has no dockremap range");
  }
  return base;
}
