import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { DockerClient, HostConfig } from "@/infra/docker/mod.ts";
import { ensureWorkspace, removeWorkspace, unmountWorkspace } from "@/infra/host/workspace.ts";
import {
  applyDirectEgress,
  ensureProjectNetwork,
  type Isolation,
  slotLabel,
  usernsFor,
} from "./isolation.ts";
import { sandboxSlotOf } from "./queries.ts";
import { containerNameOf, installationLabel, networkNameOf, projectLabel } from "./rows.ts";
import { messageOf } from "@/core/errors.ts";

export interface SandboxDeps {
  sql: Sql;
  engine: DockerClient;
  config: Config;
  installationId: string;
  isolation: Isolation;
}

export interface SandboxStart {
  projectId: string;
  userId: string;
  image: string;
  sshPublicKey: string;
  /** More environment for the sandbox (its cloud identity). */
  env?: Record<string, string>;
  /** Its egress: whether the firewall lets it out directly (open) or only via the proxy. */
  directEgress: boolean;
}

export interface RunningSandbox {
  containerId: string;
  sshHostPort: number;
}

/** Engines whose storage cannot bound a container's layer (see startSandbox). */
const noLayerBound = new WeakSet<DockerClient>();

/**
 * Makes (or finds) the project's network, workspace and container and starts it. Idempotent
 * by name: a retry after a crash reuses what exists instead of failing on a name conflict.
 */
export async function startSandbox(deps: SandboxDeps, s: SandboxStart): Promise<RunningSandbox> {
  const { engine, config } = deps;
  const net = await ensureProjectNetwork(deps, s.projectId);
  await applyDirectEgress(deps, net.slot, s.directEgress);
  const userns = await usernsFor(deps);
  const workspace = await ensureWorkspace(
    deps.isolation.workspaces,
    s.projectId,
    userns.agentHostUid,
  );
  const name = containerNameOf(s.projectId);
  const existing = await engine.inspectContainer(name);
  const reusable = existing && existing.Config.Image === s.image &&
    existing.HostConfig?.NetworkMode === networkNameOf(s.projectId);
  if (existing && !reusable) await engine.removeContainer(existing.Id, { force: true });
  const proxy = deps.isolation.proxyPort
    ? `http://${net.gateway}:${deps.isolation.proxyPort}`
    : null;
  const hostConfig: HostConfig = {
    Binds: [`${workspace}:/home/agent`],
    NetworkMode: networkNameOf(s.projectId),
    // Its own IPC namespace with /dev/shm inside it: no shared-memory mount on the host to
    // share with (or leak past) another container.
    IpcMode: "private",
    PortBindings: { "22/tcp": [{ HostIp: config.engine.hostIp, HostPort: "" }] },
    Memory: config.engine.memoryMb * 1024 * 1024,
    NanoCpus: Math.round(config.engine.cpus * 1e9),
    PidsLimit: config.engine.pids,
    RestartPolicy: { Name: "unless-stopped" },
    // No raw sockets, no network administration: no spoofing, no changing its own routes.
    CapDrop: ["NET_RAW", "NET_ADMIN"],
    // IPv4 only: the firewall and the egress proxy then see every packet it sends.
    Sysctls: { "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1" },
    // No no-new-privileges: agent has sudo inside its own container (root there maps to an
    // unprivileged host uid), so users can install packages (kept by snapshots).
  };
  const spec = {
    Image: s.image,
    Hostname: "sandbox",
    Env: {
      ...s.env,
      SSH_PUBLIC_KEY: s.sshPublicKey,
      ...(proxy ? { POMODEX_EGRESS_PROXY: proxy } : {}),
    },
    Labels: {
      [installationLabel]: deps.installationId,
      [projectLabel]: s.projectId,
      "pomodex.owner": s.userId,
    },
    ExposedPorts: { "22/tcp": {} },
    HostConfig: hostConfig,
  };
  const containerId = reusable ? existing.Id : await createBounded(engine, config, name, spec);
  await engine.startContainer(containerId);
  const info = await engine.inspectContainer(containerId);
  const sshHostPort = engine.hostPortOf(info, "22/tcp");
  if (!info?.State.Running || !sshHostPort) {
    throw new Error(`the container did not start (${info?.State.Status ?? "gone"})`);
  }
  return { containerId, sshHostPort };
}

/**
 * Creates the container with its own layer bounded to SANDBOX_ROOTFS_GB where the engine's
 * storage can do that (overlay on XFS with project quotas, btrfs, zfs). Where it cannot, the
 * engine says so; the container is made without, and the disk job enforces the bound by
 * measuring (jobs/disk.ts).
 */
async function createBounded(
  engine: DockerClient,
  config: Config,
  name: string,
  spec: Parameters<DockerClient["createContainer"]>[1],
): Promise<string> {
  if (!noLayerBound.has(engine)) {
    const bounded = {
      ...spec,
      HostConfig: { ...spec.HostConfig, StorageOpt: { size: `${config.isolation.rootfsGb}G` } },
    };
    try {
      return (await engine.createContainer(name, bounded)).id;
    } catch (err) {
      if (
        !/storage.?opt|storage option|quota|unknown option size|not supported/i.test(String(err))
      ) {
        throw err;
      }
      noLayerBound.add(engine);
    }
  }
  return (await engine.createContainer(name, spec)).id;
}

/** Resolves once sshd sends its banner on the published port. */
export async function waitForSsh(
  hostname: string,
  port: number,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      if (await readsSshBanner(hostname, port)) return;
      last = "no SSH banner";
    } catch (err) {
      last = messageOf(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not answer on ${hostname}:${port} within ${timeoutMs} ms (${last})`);
}

async function readsSshBanner(hostname: string, port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname, port });
  try {
    const buf = new Uint8Array(64);
    const timer = setTimeout(() => conn.close(), 2000);
    const n = await conn.read(buf).catch(() => null);
    clearTimeout(timer);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("SSH-");
  } finally {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/**
 * Stops and removes the container (stopping first lets the engine release its mounts
 * cleanly), then unmounts the workspace; unless told to keep it, also deletes the workspace
 * and the network. Absent is fine.
 */
export async function removeSandbox(
  deps: Pick<SandboxDeps, "engine" | "isolation" | "sql">,
  projectId: string,
  opts: { keepVolume?: boolean } = {},
): Promise<void> {
  const name = containerNameOf(projectId);
  await deps.engine.stopContainer(name, { timeoutSeconds: 5 }).catch(() => {});
  await deps.engine.removeContainer(name, { force: true });
  if (opts.keepVolume) return await unmountWorkspace(deps.isolation.workspaces, projectId);
  await removeWorkspace(deps.isolation.workspaces, projectId);
  // The direct route goes first: a crash between the two must not leave it open for the
  // next project on this slot. The row knows the slot even when the network is gone.
  const network = await deps.engine.inspectNetwork(networkNameOf(projectId));
  const row = await sandboxSlotOf(deps.sql, projectId);
  const slot = network ? Number(network.Labels?.[slotLabel]) : row?.sandboxSlot;
  if (Number.isInteger(slot)) await applyDirectEgress(deps, slot as number, false);
  if (network) await deps.engine.removeNetwork(network.Name);
}
