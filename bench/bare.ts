// The floors of the project benches: the engine doing what a project needs with plain calls
// (a container of the sandbox image, its SSH port published, sshd answering, one SSH login),
// and nothing of Pomodex's own. Two shapes:
//   - isolated: what Pomodex now does, minus Pomodex: a bridge network of its own (a /28,
//     a named bridge), a sparse ext4 image made with mkfs.ext4, loop-mounted on the host and
//     bind-mounted at /home/agent, and the sandbox's own hardening (no raw sockets or network
//     administration, IPv4 only, private IPC);
//   - plain: the floor from before isolation: the default network and an engine named volume.
// The difference between the two is what isolation itself costs.
import type { DockerClient } from "@/infra/docker/mod.ts";
import type { HostConfig } from "@/infra/docker/types.ts";
import { waitForSsh } from "@/projects/sandbox.ts";
import type { SshKeyPair } from "@/projects/ssh-keys.ts";
import { removeDirSafely, unmountAllUnder } from "@/reliability/helpers/workspace.ts";
import { sshRun } from "@/tests/helpers/ssh.ts";

export type BareShape = "isolated" | "plain";

const LABELS = { "pomodex.bench": "1" };
/** Pomodex's default WORKSPACE_DISK_GB. */
const WORKSPACE_GB = 10;
/** The agent user's uid in the image (no user namespace: the same on the host). */
const AGENT_UID = 1000;

/** What an isolated bare sandbox has besides its container: its network and workspace. */
export interface BareIsolation {
  network: string;
  subnet: string;
  gateway: string;
  /** The mounted workspace on the host. */
  mountpoint: string;
}

/**
 * The bare floors' side of the host: a directory for workspace images and their mount
 * points, and /28s from 10.216.0.0/16 (apart from every Pomodex pool the benches use).
 */
export class BareHost implements AsyncDisposable {
  #used = new Set<number>();
  private constructor(readonly engine: DockerClient, readonly dir: string) {}

  static async open(engine: DockerClient): Promise<BareHost> {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "pomodex-bench-bare-" }));
    await Deno.mkdir(`${dir}/mnt`, { mode: 0o711 });
    return new BareHost(engine, dir);
  }

  /** Makes the network and the mounted workspace, as Pomodex does for a create. */
  async isolate(name: string): Promise<BareIsolation> {
    let slot: number;
    do slot = crypto.getRandomValues(new Uint16Array(1))[0] & 0xfff; while (this.#used.has(slot));
    this.#used.add(slot);
    const base = slot * 16;
    const subnet = `10.216.${base >> 8}.${base & 0xff}/28`;
    const gateway = `10.216.${base >> 8}.${(base & 0xff) + 1}`;
    await this.engine.createNetwork({
      Name: name,
      Driver: "bridge",
      IPAM: { Config: [{ Subnet: subnet, Gateway: gateway }] },
      Options: { "com.docker.network.bridge.name": `pdxbb${slot}` },
      Labels: LABELS,
    });
    const image = `${this.dir}/${name}.ext4`;
    const mountpoint = `${this.dir}/mnt/${name}`;
    const file = await Deno.open(image, { create: true, write: true, mode: 0o600 });
    await file.truncate(WORKSPACE_GB * 1024 ** 3);
    file.close();
    await run("mkfs.ext4", [
      "-q",
      "-F",
      "-m",
      "0",
      "-E",
      `root_owner=${AGENT_UID}:${AGENT_UID},lazy_itable_init=1,lazy_journal_init=1`,
      image,
    ]);
    await Deno.mkdir(mountpoint, { mode: 0o000 });
    await run("mount", ["-t", "ext4", "-o", "loop,nodev,nosuid,noatime", image, mountpoint]);
    return { network: name, subnet, gateway, mountpoint };
  }

  /** Unmounts the workspace (the image stays), as a stop does. */
  async unmount(iso: BareIsolation) {
    await run("umount", [iso.mountpoint]);
  }

  /** Mounts the kept workspace again, as a start does. */
  async mount(iso: BareIsolation) {
    const image = `${this.dir}/${iso.network}.ext4`;
    await run("mount", ["-t", "ext4", "-o", "loop,nodev,nosuid,noatime", image, iso.mountpoint]);
  }

  /** Network, mount, image and mount point: gone. */
  async remove(iso: BareIsolation) {
    await this.engine.removeNetwork(iso.network).catch(() => false);
    await run("umount", [iso.mountpoint]).catch(() => run("umount", ["--lazy", iso.mountpoint]))
      .catch(() => {});
    await Deno.remove(iso.mountpoint).catch(() => {});
    await Deno.remove(`${this.dir}/${iso.network}.ext4`).catch(() => {});
  }

  /** Everything of the bare floors: labelled containers and networks, mounts, the directory. */
  async close() {
    for (const c of await this.engine.listContainers({ all: true, labels: LABELS })) {
      await this.engine.removeContainer(c.Id, { force: true }).catch(() => false);
    }
    for (const n of await this.engine.listNetworks({ labels: LABELS })) {
      if (n.Labels?.["pomodex.bench"] === "1") await this.engine.removeNetwork(n.Name);
    }
    await unmountAllUnder(this.dir);
    await removeDirSafely(this.dir);
  }

  /** close(), at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/**
 * Creates and starts the container, waits for sshd and logs in once; returns its id and SSH
 * port. `iso`: on its network with its workspace (isolated shape); without: the default
 * network and a named volume called after the container (plain shape).
 */
export async function runBareSandbox(
  engine: DockerClient,
  name: string,
  image: string,
  keys: SshKeyPair,
  iso?: BareIsolation,
): Promise<{ id: string; port: number }> {
  const hostConfig: HostConfig = {
    Binds: [`${iso ? iso.mountpoint : name}:/home/agent`],
    PortBindings: { "22/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
    Memory: 1024 * 1024 * 1024,
    NanoCpus: 1e9,
    PidsLimit: 256,
    ...(iso
      ? {
        NetworkMode: iso.network,
        IpcMode: "private",
        CapDrop: ["NET_RAW", "NET_ADMIN"],
        Sysctls: {
          "net.ipv6.conf.all.disable_ipv6": "1",
          "net.ipv6.conf.default.disable_ipv6": "1",
        },
      }
      : {}),
  };
  const { id } = await engine.createContainer(name, {
    Image: image,
    Hostname: "sandbox",
    Env: { SSH_PUBLIC_KEY: keys.publicKey },
    Labels: LABELS,
    ExposedPorts: { "22/tcp": {} },
    HostConfig: hostConfig,
  });
  await engine.startContainer(id);
  const port = engine.hostPortOf(await engine.inspectContainer(id), "22/tcp")!;
  await waitForSsh("127.0.0.1", port);
  const ssh = await sshRun(
    { ssh_host: "127.0.0.1", ssh_port: port, ssh_user: "agent" },
    keys.privateKey,
    "true",
  );
  if (ssh.code !== 0) throw new Error(`bare ssh: ${ssh.stderr}`);
  return { id, port };
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}
