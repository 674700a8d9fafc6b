/**
 * A project's workspace is an ext4 file system in an image file of its own, loop-mounted on
 * the host and bind-mounted into the sandbox at /home/agent. Its size is the bound: a full
 * workspace answers "No space left on device" inside the sandbox and nothing outside it
 * notices. The app mounts it itself (rather than through an engine volume) so that Podman and
 * Docker behave alike and no engine keeps a mount behind after a container goes.
 */
import { messageOf } from "@/core/errors.ts";

export interface WorkspaceLayout {
  /** Absolute; images are `<dir>/<id>.ext4`, mount points `<dir>/mnt/<id>`. */
  dir: string;
  sizeGb: number;
}

export class WorkspaceError extends Error {}

export const workspaceImageOf = (layout: WorkspaceLayout, projectId: string) =>
  `${layout.dir}/${projectId}.ext4`;
export const workspaceMountOf = (layout: WorkspaceLayout, projectId: string) =>
  `${layout.dir}/mnt/${projectId}`;

/** Resolves WORKSPACE_DIR to an absolute path, making it if needed. */
export async function workspaceLayout(dir: string, sizeGb: number): Promise<WorkspaceLayout> {
  await Deno.mkdir(`${dir}/mnt`, { recursive: true, mode: 0o711 });
  return { dir: await Deno.realPath(dir), sizeGb };
}

/**
 * The mounted workspace of a project, made on first use. `ownerUid` is the host uid that the
 * sandbox's `agent` (uid 1000 inside) maps to: the file system's root directory belongs to it.
 */
export async function ensureWorkspace(
  layout: WorkspaceLayout,
  projectId: string,
  ownerUid: number,
): Promise<string> {
  const image = workspaceImageOf(layout, projectId);
  const mountpoint = workspaceMountOf(layout, projectId);
  if (!(await exists(image))) await makeImage(image, layout.sizeGb, ownerUid);
  if (await isMounted(mountpoint)) return mountpoint;
  // Owned by host root with no permissions while nothing is mounted on it: should a sandbox
  // ever start without its workspace, it cannot write to the host's disk through it. (Once
  // mounted, the path is the workspace's own root: never chmod it then.)
  await Deno.mkdir(mountpoint, { recursive: true, mode: 0o000 });
  await Deno.chmod(mountpoint, 0o000);
  await run("mount", ["-t", "ext4", "-o", "loop,nodev,nosuid,noatime", image, mountpoint]);
  return mountpoint;
}

export async function workspaceExists(layout: WorkspaceLayout, projectId: string) {
  return await exists(workspaceImageOf(layout, projectId));
}

/** Unmounts (lazily if something still holds it). Not mounted is fine. */
export async function unmountWorkspace(layout: WorkspaceLayout, projectId: string) {
  const mountpoint = workspaceMountOf(layout, projectId);
  if (!(await isMounted(mountpoint))) return;
  await run("umount", [mountpoint]).catch(() => run("umount", ["--lazy", mountpoint]));
}

/** Unmounts and deletes the image: the workspace is gone. Absent is fine. */
export async function removeWorkspace(layout: WorkspaceLayout, projectId: string) {
  await unmountWorkspace(layout, projectId);
  await Deno.remove(workspaceImageOf(layout, projectId)).catch(ignoreNotFound);
  await Deno.remove(workspaceMountOf(layout, projectId)).catch(ignoreNotFound);
}

/** Bytes used and the file system's size, while mounted; else null. */
export async function workspaceUsage(
  layout: WorkspaceLayout,
  projectId: string,
): Promise<{ used: number; size: number } | null> {
  const mountpoint = workspaceMountOf(layout, projectId);
  if (!(await isMounted(mountpoint))) return null;
  const out = await run("df", ["-B1", "--output=used,size", mountpoint]);
  const [used, size] = out.trim().split("\n").at(-1)!.trim().split(/\s+/).map(Number);
  return Number.isFinite(used) && Number.isFinite(size) ? { used, size } : null;
}

/** The project ids whose workspace image is in the directory (for the reconciler). */
export async function listWorkspaces(layout: WorkspaceLayout): Promise<string[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(layout.dir)) {
    const match = entry.isFile && entry.name.match(/^([0-9a-f-]{36})\.ext4$/);
    if (match) ids.push(match[1]);
  }
  return ids;
}

async function makeImage(image: string, sizeGb: number, ownerUid: number) {
  const partial = `${image}.partial`;
  await Deno.remove(partial).catch(ignoreNotFound);
  // Sparse: the host's disk holds only what the sandbox writes. No reserved blocks (only
  // root could use them); lazy init keeps the making of a 10 GB one at a few milliseconds.
  const file = await Deno.open(partial, { create: true, write: true, mode: 0o600 });
  await file.truncate(sizeGb * 1024 ** 3);
  file.close();
  await run("mkfs.ext4", [
    "-q",
    "-F",
    "-m",
    "0",
    "-E",
    `root_owner=${ownerUid}:${ownerUid},lazy_itable_init=1,lazy_journal_init=1`,
    partial,
  ]);
  await Deno.rename(partial, image);
}

async function isMounted(path: string): Promise<boolean> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  // Field 5 is the mount point, with spaces and the like octal-escaped.
  const escaped = path.replace(
    /[ \t\n\\]/g,
    (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`,
  );
  return info.split("\n").some((line) => line.split(" ")[4] === escaped);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function ignoreNotFound(err: unknown) {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

async function run(cmd: string, args: string[]): Promise<string> {
  let output;
  try {
    output = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (err) {
    throw new WorkspaceError(`cannot run ${cmd}: ${messageOf(err)}`);
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n")[0] ?? "";
    throw new WorkspaceError(`${cmd} failed: ${stderr.slice(0, 300)}`);
  }
  return new TextDecoder().decode(output.stdout);
}
