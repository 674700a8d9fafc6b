import type { ProjectDeps } from "./deps.ts";
import type { ProjectRow } from "./rows.ts";

/** Snapshot tags kept per project besides `latest`; older ones are deleted after a stop. */
const SNAPSHOTS_KEPT = 3;

/**
 * Commits the container as a new tagged image and pushes it and `latest`; a failed push
 * drops the new image, so the previous snapshot stays current.
 */
export async function takeSnapshot(deps: ProjectDeps, row: ProjectRow) {
  const at = new Date();
  const repository = deps.snapshots.repository(row.id);
  const tag = `s${at.toISOString().replace(/[-:.TZ]/g, "").slice(0, 17)}`;
  const image = `${repository}:${tag}`;
  await deps.engine.commitContainer(row.containerId!, {
    repo: repository,
    tag,
    comment: `pomodex snapshot of ${row.id}`,
  });
  try {
    const registry = deps.snapshots.registry;
    if (registry) await deps.engine.pushImage(image, { auth: await registry.auth() });
    await deps.engine.tagImage(image, repository, "latest");
    if (registry) {
      await deps.engine.pushImage(`${repository}:latest`, { auth: await registry.auth() });
    }
  } catch (err) {
    // The new image never became the current snapshot: drop it, keep the old one.
    await deps.engine.removeImage(image, { force: true }).catch(() => {});
    throw err;
  }
  const size = (await deps.engine.inspectImage(image))?.Size ?? null;
  return { image, at, size };
}

export async function pruneSnapshots(deps: ProjectDeps, projectId: string) {
  const repository = deps.snapshots.repository(projectId);
  const local = (await deps.engine.listImages(repository))
    .flatMap((i) => i.RepoTags ?? [])
    .filter((ref) => ref.startsWith(`${repository}:s`))
    .sort();
  for (const ref of local.slice(0, Math.max(0, local.length - SNAPSHOTS_KEPT))) {
    await deps.engine.removeImage(ref).catch(() => {});
  }
  const registry = deps.snapshots.registry;
  if (!registry) return;
  const path = registry.pathOf(repository);
  const tags = (await registry.client.listTags(path)).filter((t) => t.startsWith("s")).sort();
  for (const tag of tags.slice(0, Math.max(0, tags.length - SNAPSHOTS_KEPT))) {
    await registry.client.deleteTag(path, tag);
  }
}

export /** The image in the engine, pulled from the snapshot registry when the engine lacks it. */
async function ensureImage(deps: ProjectDeps, image: string): Promise<string> {
  if (await deps.engine.inspectImage(image)) return image;
  const registry = deps.snapshots.registry;
  if (!registry || !image.startsWith(`${registry.address}/`)) {
    throw new Error(`the image ${image} is not in the engine`);
  }
  await deps.engine.pullImage(image, { auth: await registry.auth() });
  return image;
}

/** The project's snapshot images the engine holds (pulled or committed here). */
export async function removeSnapshotImages(deps: ProjectDeps, projectId: string) {
  const repository = deps.snapshots.repository(projectId);
  for (const image of await deps.engine.listImages(repository)) {
    for (const ref of image.RepoTags ?? []) await deps.engine.removeImage(ref, { force: true });
  }
}

/** The project's repository in the registry, every tag of it (nothing without a registry). */
export async function deleteSnapshotRepository(deps: ProjectDeps, projectId: string) {
  const registry = deps.snapshots.registry;
  if (!registry) return;
  await registry.client.deleteRepository(registry.pathOf(deps.snapshots.repository(projectId)));
}
