import type { Config } from "../config.ts";
import type { DockerClient } from "../docker/mod.ts";
import { containerNameOf, installationLabel, projectLabel, volumeNameOf } from "./rows.ts";

export interface SandboxStart {
  installationId: string;
  projectId: string;
  userId: string;
  image: string;
  sshPublicKey: string;
  /** More environment for the sandbox (its cloud identity). */
  env?: Record<string, string>;
}

export interface RunningSandbox {
  containerId: string;
  sshHostPort: number;
}

/**
 * Makes (or finds) the project's volume and container and starts it. Idempotent by name:
 * a retry after a crash reuses what exists instead of failing on a name conflict.
 */
export async function startSandbox(
  engine: DockerClient,
  config: Config,
  s: SandboxStart,
): Promise<RunningSandbox> {
  const labels = {
    [installationLabel]: s.installationId,
    [projectLabel]: s.projectId,
    "pomodex.owner": s.userId,
  };
  const volume = volumeNameOf(s.projectId);
  if (!(await engine.inspectVolume(volume))) await engine.createVolume(volume, labels);
  const name = containerNameOf(s.projectId);
  const existing = await engine.inspectContainer(name);
  if (existing && existing.Config.Image !== s.image) {
    await engine.removeContainer(existing.Id, { force: true });
  }
  const containerId = existing && existing.Config.Image === s.image
    ? existing.Id
    : (await engine.createContainer(name, {
      Image: s.image,
      Hostname: "sandbox",
      Env: { ...s.env, SSH_PUBLIC_KEY: s.sshPublicKey },
      Labels: labels,
      ExposedPorts: { "22/tcp": {} },
      HostConfig: {
        Binds: [`${volume}:/home/agent`],
        PortBindings: { "22/tcp": [{ HostIp: config.engine.hostIp, HostPort: "" }] },
        Memory: config.engine.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(config.engine.cpus * 1e9),
        PidsLimit: config.engine.pids,
        RestartPolicy: { Name: "unless-stopped" },
        // No raw sockets: sandboxes share the engine's bridge, and NET_RAW is what ARP and
        // IP spoofing of a neighbour would take.
        CapDrop: ["NET_RAW", "NET_ADMIN"],
        // No no-new-privileges: agent has sudo inside its own unprivileged container, so
        // users can install packages (kept by snapshots). The container itself gets the
        // engine's default, reduced capability set and no host mounts.
      },
    })).id;
  await engine.startContainer(containerId);
  const info = await engine.inspectContainer(containerId);
  const sshHostPort = engine.hostPortOf(info, "22/tcp");
  if (!info?.State.Running || !sshHostPort) {
    throw new Error(`the container did not start (${info?.State.Status ?? "gone"})`);
  }
  return { containerId, sshHostPort };
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
      last = err instanceof Error ? err.message : String(err);
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

/** Removes the container, and the volume too unless told to keep it. Absent is fine. */
export async function removeSandbox(
  engine: DockerClient,
  projectId: string,
  opts: { keepVolume?: boolean } = {},
): Promise<void> {
  await engine.removeContainer(containerNameOf(projectId), { force: true });
  if (!opts.keepVolume) await engine.removeVolume(volumeNameOf(projectId), { force: true });
}
