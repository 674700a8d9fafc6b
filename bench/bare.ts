// The floor of the project benches: the engine doing what a project needs with plain calls
// (a container of the sandbox image on a volume, its SSH port published, sshd answering,
// one SSH login), and nothing of Pomodex's own.
import type { DockerClient } from "../lib/docker/mod.ts";
import { waitForSsh } from "../lib/projects/sandbox.ts";
import type { SshKeyPair } from "../lib/projects/ssh-keys.ts";
import { sshRun } from "../tests/helpers/ssh.ts";

/** Creates and starts the container, waits for sshd and logs in once; returns its id. */
export async function runBareSandbox(
  engine: DockerClient,
  name: string,
  image: string,
  keys: SshKeyPair,
): Promise<string> {
  const { id } = await engine.createContainer(name, {
    Image: image,
    Env: { SSH_PUBLIC_KEY: keys.publicKey },
    Labels: { "pomodex.bench": "1" },
    ExposedPorts: { "22/tcp": {} },
    HostConfig: {
      Binds: [`${name}:/home/agent`],
      PortBindings: { "22/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
      Memory: 1024 * 1024 * 1024,
      NanoCpus: 1e9,
      PidsLimit: 256,
    },
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
  return id;
}
