/** Runs a command over real SSH with a project's private key, as a user would. */
export async function sshRun(
  target: { ssh_host: string; ssh_port: number; ssh_user: string },
  privateKey: string,
  command: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "pomodex-ssh-" });
  try {
    await Deno.writeTextFile(`${dir}/key`, privateKey, { mode: 0o600 });
    const out = await new Deno.Command("ssh", {
      args: sshArgs(target, `${dir}/key`, command),
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The ssh command line the tests log in with: the key file, no host-key prompts, no agent. */
export function sshArgs(
  target: { ssh_host: string; ssh_port: number; ssh_user?: string },
  keyFile: string,
  ...command: string[]
): string[] {
  return [
    ...["-i", keyFile, "-p", String(target.ssh_port)],
    ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    ...["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"],
    `${target.ssh_user ?? "agent"}@${target.ssh_host}`,
    ...command,
  ];
}
