import type { RegistryAuth } from "@/infra/docker/mod.ts";
import type { RegistryClient } from "@/infra/registry/client.ts";

/**
 * Where snapshot images go. With a registry, `<registry>/pomodex-<id>:<tag>` is pushed
 * there (and pulled back on start); without one they stay as engine images.
 */
export interface SnapshotTarget {
  repository(projectId: string): string;
  registry: {
    address: string;
    client: RegistryClient;
    /** Fresh credentials for push/pull (tokens expire, so asked for each time). */
    auth(): Promise<RegistryAuth>;
    /** The repository's name inside the registry, for its HTTP API. */
    pathOf(repository: string): string;
  } | null;
}

export function localSnapshotTarget(): SnapshotTarget {
  return { repository: (id) => `localhost/pomodex-snapshot-${id}`, registry: null };
}

export function registrySnapshotTarget(
  base: string,
  client: RegistryClient,
  auth: () => Promise<RegistryAuth>,
): SnapshotTarget {
  return {
    repository: (id) => `${base}/pomodex-${id}`,
    registry: {
      address: client.address,
      client,
      auth,
      pathOf: (repository) => repository.slice(client.address.length + 1),
    },
  };
}
