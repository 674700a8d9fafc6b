/**
 * What a server keeps of a project on the host itself, as the reliability tests read it: the
 * workspace image (`<WORKSPACE_DIR>/<id>.ext4`, or `.ext4.partial` while it is being made),
 * its mount (`<WORKSPACE_DIR>/mnt/<id>`, a loop mount), the loop device behind that mount,
 * and the project's subnet in the firewall's set of direct-egress networks. Read from
 * /proc/self/mountinfo, `losetup` and `nft`, never through the app.
 */
import { directEgressSubnets } from "@/infra/network/firewall.ts";
import { parsePool } from "@/infra/network/subnets.ts";
import { isUuid } from "@/core/ids.ts";

/** A temp directory for WORKSPACE_DIR: one per test, shared by every instance of that test. */
export async function makeWorkspaceDir(prefix = "pomodex-rel-ws-"): Promise<string> {
  return await Deno.realPath(await Deno.makeTempDir({ prefix }));
}

export interface WorkspaceState {
  /** The image file is on disk. */
  image: boolean;
  /** Something is mounted on the project's mount point. */
  mounted: boolean;
  /** Loop devices whose backing file is the project's image (deleted or not). */
  loops: string[];
}

export async function workspaceState(dir: string, id: string): Promise<WorkspaceState> {
  const real = await realDir(dir);
  return {
    image: await exists(`${real}/${id}.ext4`),
    mounted: (await mountsUnder(real)).some((m) => m.id === id),
    loops: (await loopsOf(real)).filter((l) => l.id === id).map((l) => l.device),
  };
}

export const describeWorkspace = (s: WorkspaceState) =>
  `workspace ${s.image ? "image" : "no image"}${s.mounted ? " mounted" : ""}${
    s.loops.length ? ` (${s.loops.join(", ")})` : ""
  }`;

export interface WorkspaceLeftovers {
  /** Images (and half-made ones) and mount-point directories of projects not live. */
  orphanWorkspaces: string[];
  /** Mounts under the directory of projects not live, and anything else mounted there. */
  orphanMounts: string[];
  /** Loop devices backed by an image in the directory of a project not live. */
  orphanLoops: string[];
}

/** Everything of the directory's that no live project accounts for. */
export async function workspaceLeftovers(
  dir: string,
  liveIds: Set<string>,
): Promise<WorkspaceLeftovers> {
  const real = await realDir(dir);
  const orphanWorkspaces: string[] = [];
  for (const entry of await list(real)) {
    if (entry.name === "mnt" && entry.isDirectory) continue;
    const id = /^([0-9a-f-]{36})\.ext4(\.partial)?$/.exec(entry.name)?.[1];
    if (!id || !liveIds.has(id)) orphanWorkspaces.push(entry.name);
  }
  for (const entry of await list(`${real}/mnt`)) {
    if (!liveIds.has(entry.name)) orphanWorkspaces.push(`mnt/${entry.name}`);
  }
  const orphanMounts = (await mountsUnder(real))
    .filter((m) => !m.id || !liveIds.has(m.id))
    .map((m) => m.path);
  const orphanLoops = (await loopsOf(real))
    .filter((l) => !l.id || !liveIds.has(l.id))
    .map((l) => `${l.device} -> ${l.backingFile}`);
  return { orphanWorkspaces, orphanMounts, orphanLoops };
}

/**
 * Subnets of `pool` in the firewall's direct-egress set whose network is gone from the engine:
 * a deleted project's open egress left behind. `networkSubnets`: every subnet the engine's
 * networks have now (of any installation: slots are unique on an engine).
 */
export async function staleDirectEgress(pool: string, networkSubnets: Set<string>) {
  const p = parsePool(pool);
  const size = 2 ** (32 - p.prefix);
  const inPool = (subnet: string) => {
    const n = toNumber(subnet.split("/")[0]);
    return n >= p.base && n < p.base + size;
  };
  const subnets = await directEgressSubnets().catch(() => [] as string[]);
  return subnets.filter((s) => inPool(s) && !networkSubnets.has(s));
}

/**
 * Unmounts everything mounted under the directory (lazily when busy), whatever the image;
 * the loop devices go with their mounts. Returns what is still mounted (should be nothing).
 */
export async function unmountAllUnder(dir: string): Promise<string[]> {
  const real = await realDir(dir).catch(() => null);
  if (!real) return [];
  for (const m of (await mountsUnder(real)).reverse()) {
    if (!(await run("umount", [m.path])).ok) await run("umount", ["--lazy", m.path]);
  }
  return (await mountsUnder(real)).map((m) => m.path);
}

/**
 * A temp directory that `await using` removes at the end of the scope (removeDirSafely: it
 * refuses to delete through a mount still there).
 */
export async function scratchDir(prefix: string): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => removeDirSafely(path) };
}

/** A WORKSPACE_DIR (makeWorkspaceDir) that `await using` removes, as scratchDir does. */
export async function scratchWorkspaceDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await makeWorkspaceDir();
  return { path, [Symbol.asyncDispose]: () => removeDirSafely(path) };
}

/**
 * Removes a data (or workspace) directory, unmounting every workspace in it first: a
 * recursive delete through a mounted workspace would empty the workspace itself. Refuses
 * (throws) when something stays mounted, rather than delete through it.
 */
export async function removeDirSafely(dir: string): Promise<void> {
  const left = await unmountAllUnder(dir);
  if (left.length > 0) {
    throw new Error(`not removing ${dir}: still mounted there: ${left.join(", ")}`);
  }
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** Unmounts and deletes one project's workspace in the directory. Absent is fine. */
export async function removeWorkspaceIn(dir: string, id: string): Promise<boolean> {
  const real = await realDir(dir).catch(() => null);
  if (!real) return false;
  let removed = false;
  for (const m of await mountsUnder(real)) {
    if (m.id !== id) continue;
    if (!(await run("umount", [m.path])).ok) await run("umount", ["--lazy", m.path]);
    removed = true;
  }
  for (const path of [`${real}/${id}.ext4`, `${real}/${id}.ext4.partial`, `${real}/mnt/${id}`]) {
    if (await Deno.remove(path).then(() => true, () => false)) removed = true;
  }
  return removed;
}

/** Project ids with anything in the directory: images, mount points, mounts. */
export async function idsIn(dir: string): Promise<string[]> {
  const real = await realDir(dir).catch(() => null);
  if (!real) return [];
  const ids = new Set<string>();
  for (const e of await list(real)) {
    const id = /^([0-9a-f-]{36})\.ext4/.exec(e.name)?.[1];
    if (id) ids.add(id);
  }
  for (const e of await list(`${real}/mnt`)) if (isUuid(e.name)) ids.add(e.name);
  for (const m of await mountsUnder(real)) if (m.id) ids.add(m.id);
  return [...ids];
}

// --- reading the host

interface Mount {
  path: string;
  /** The project id when the path is `<dir>/mnt/<id>`. */
  id: string | null;
}

/** Mount points at or below `<dir>/`, from this process's mount table. */
async function mountsUnder(dir: string): Promise<Mount[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  const out: Mount[] = [];
  for (const line of info.split("\n")) {
    const field = line.split(" ")[4];
    if (!field) continue;
    const path = field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (!path.startsWith(`${dir}/`)) continue;
    const id = path.slice(`${dir}/mnt/`.length);
    out.push({ path, id: path.startsWith(`${dir}/mnt/`) && isUuid(id) ? id : null });
  }
  return out;
}

interface Loop {
  device: string;
  backingFile: string;
  id: string | null;
}

/** Loop devices backed by a file in `<dir>/` (losetup names a deleted one "... (deleted)"). */
async function loopsOf(dir: string): Promise<Loop[]> {
  const res = await run("losetup", ["--list", "--json", "--output", "NAME,BACK-FILE"]);
  if (!res.ok || !res.stdout.trim()) return [];
  const list: { name: string; "back-file": string | null }[] = JSON.parse(res.stdout).loopdevices ??
    [];
  return list
    .filter((l) => l["back-file"]?.startsWith(`${dir}/`))
    .map((l) => {
      const file = l["back-file"]!;
      const id = /\/([0-9a-f-]{36})\.ext4(\s|$)/.exec(file)?.[1] ?? null;
      return { device: l.name, backingFile: file, id };
    });
}

async function list(dir: string): Promise<Deno.DirEntry[]> {
  const out: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

/** The directory as the kernel names it (mount points are listed by real path). */
async function realDir(dir: string): Promise<string> {
  try {
    return await Deno.realPath(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return dir.replace(/\/$/, "");
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function run(cmd: string, args: string[]) {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return { ok: out.success, stdout: new TextDecoder().decode(out.stdout) };
  } catch {
    return { ok: false, stdout: "" };
  }
}

function toNumber(address: string): number {
  return address.split(".").reduce((n, p) => n * 256 + Number(p), 0);
}
