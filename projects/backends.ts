import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { Logger } from "@/core/log.ts";
import { type Isolation, prepareIsolation } from "./isolation.ts";
import { DockerClient, findDockerSocket } from "@/infra/docker/mod.ts";
import {
  artifactRegistryAuth,
  artifactRegistryHost,
  type GcpApiOptions,
  type GcpCredentials,
  loadCredentials,
} from "@/infra/gcp/mod.ts";
import { RegistryClient } from "@/infra/registry/client.ts";
import {
  type BackupStore,
  createGcsStorage,
  GcsBackupStore,
  LocalBackupStore,
} from "@/infra/storage/mod.ts";
import {
  localSnapshotTarget,
  registrySnapshotTarget,
  type SnapshotTarget,
} from "./snapshot-target.ts";

export interface ProjectBackends {
  engine: DockerClient;
  /** Labels every engine resource of this installation carries (see 006_installation.sql). */
  installationId: string;
  /** This process, as the worker of the transitions it starts (see 007_instances.sql). */
  instanceId: string;
  backups: BackupStore;
  snapshots: SnapshotTarget;
  /** Google Cloud mode: per-project service accounts with access to their bucket prefix. */
  gcp: (GcpApiOptions & { gcpProject: string; bucket: string }) | null;
  /** Networks, firewall, user namespaces and workspace disks (projects/isolation.ts). */
  isolation: Isolation;
}

/**
 * Config decides: the engine from DOCKER_HOST; snapshots in a registry when REGISTRY (or
 * Google Cloud) is set, else engine images; backups in GCS when GCS_BUCKET is set, else a
 * directory in DATA_DIR.
 */
export async function createProjectBackends(
  config: Config,
  sql: Sql,
  log: Logger,
): Promise<ProjectBackends> {
  const [{ id: installationId }] = await sql<{ id: string }[]>`SELECT id FROM installation LIMIT 1`;
  const instanceId = crypto.randomUUID();
  await sql`INSERT INTO instances (id) VALUES (${instanceId})`;
  const engine = new DockerClient({ socketPath: findDockerSocket(config.engine.dockerHost) });
  const gcp = config.gcp;
  const credentials: GcpCredentials | null = gcp?.credentialsPath
    ? await loadCredentials(gcp.credentialsPath)
    : null;
  const api = credentials
    ? { credentials, iamBaseUrl: gcp?.iamEndpoint, storageBaseUrl: gcp?.storageEndpoint }
    : null;

  const backups: BackupStore = api && gcp?.bucket
    ? new GcsBackupStore({
      bucket: gcp.bucket,
      storage: createGcsStorage({
        authClient: api.credentials.authClient,
        apiEndpoint: gcp.storageEndpoint,
      }),
    })
    : new LocalBackupStore(`${config.dataDir}/backups`);

  let snapshots: SnapshotTarget = localSnapshotTarget();
  if (api && gcp) {
    const host = gcp.artifactRegistryHost ?? artifactRegistryHost(gcp.artifactRegistryLocation);
    const auth = () =>
      artifactRegistryAuth(api.credentials, {
        location: gcp.artifactRegistryLocation,
        registryHost: host,
      });
    const client = new RegistryClient(host, auth);
    snapshots = registrySnapshotTarget(
      `${host}/${gcp.project}/${gcp.artifactRegistryRepository}`,
      client,
      auth,
    );
  } else if (config.registry) {
    const { address, username, password } = config.registry;
    const creds = username && password ? { username, password } : undefined;
    const client = new RegistryClient(address, () => Promise.resolve(creds));
    snapshots = registrySnapshotTarget(
      address,
      client,
      () => Promise.resolve({ ...creds, serveraddress: address }),
    );
  }

  return {
    engine,
    installationId,
    instanceId,
    backups,
    snapshots,
    gcp: api && gcp?.bucket ? { ...api, gcpProject: gcp.project, bucket: gcp.bucket } : null,
    isolation: await prepareIsolation(config, log),
  };
}
