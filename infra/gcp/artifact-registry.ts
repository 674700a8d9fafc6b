/**
 * Artifact Registry as the snapshot registry: it is an OCI/Docker registry at
 * `<location>-docker.pkg.dev` that accepts an OAuth2 access token as the password of the
 * user `oauth2accesstoken`.
 */
import type { AccessTokenSource } from "./credentials.ts";
import { GcpError } from "./errors.ts";

/** Docker Engine `X-Registry-Auth` / AuthConfig shape. */
export interface RegistryAuth {
  username: "oauth2accesstoken";
  password: string;
  serveraddress: string;
}

const LOCATION_RE = /^[a-z][a-z0-9-]*[a-z0-9]$/;

function invalid(what: string): GcpError {
  return new GcpError({ status: 0, operation: "artifactregistry", googleMessage: what });
}

/** `<location>-docker.pkg.dev`, e.g. `europe-west1-docker.pkg.dev`. */
export function artifactRegistryHost(location: string): string {
  if (!LOCATION_RE.test(location)) throw invalid(`invalid location ${JSON.stringify(location)}`);
  return `${location}-docker.pkg.dev`;
}

/**
 * Registry credentials for pushing/pulling snapshots: a fresh access token of `auth`.
 * `registryHost` overrides the host derived from `location` (tests, other registries).
 */
export async function artifactRegistryAuth(
  auth: AccessTokenSource,
  opts: { location: string; registryHost?: string },
): Promise<RegistryAuth> {
  const serveraddress = opts.registryHost ?? artifactRegistryHost(opts.location);
  return { username: "oauth2accesstoken", password: await auth.getAccessToken(), serveraddress };
}

/**
 * The image repository of a project's snapshots:
 * `LOCATION-docker.pkg.dev/GCPPROJECT/REPOSITORY/pomodex-<projectId>` (no tag).
 */
export function snapshotRepository(
  opts: { location: string; gcpProject: string; repository: string; projectId: string },
): string {
  if (!/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(opts.gcpProject)) {
    throw invalid(`invalid GCP project id ${JSON.stringify(opts.gcpProject)}`);
  }
  if (!/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/.test(opts.repository)) {
    throw invalid(`invalid repository ${JSON.stringify(opts.repository)}`);
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(opts.projectId)) {
    throw invalid(`invalid project id ${JSON.stringify(opts.projectId)}`);
  }
  return `${
    artifactRegistryHost(opts.location)
  }/${opts.gcpProject}/${opts.repository}/pomodex-${opts.projectId}`;
}
