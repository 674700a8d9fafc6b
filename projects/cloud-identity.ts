import type { DockerClient } from "@/infra/docker/mod.ts";
import { makeTar } from "@/infra/docker/mod.ts";
import {
  deprovisionProjectIdentity,
  projectPrefix,
  provisionProjectIdentity,
} from "@/infra/gcp/mod.ts";
import { recordCloudIdentity } from "./queries.ts";
import type { ProjectRow } from "./rows.ts";
import type { ProjectDeps } from "./deps.ts";

export const cloudKeyContext = (projectId: string) => `project:${projectId}:gcp-key`;

/** Where the sandbox finds its own Google Cloud key, as Google's client libraries expect. */
export const CLOUD_KEY_PATH = "/etc/pomodex/gcp-key.json";

/**
 * Google Cloud mode: a service account of the project's own, with a key, allowed only its
 * prefix of the bucket. provisionProjectIdentity undoes its own partial work. Returns the
 * key (also stored sealed), or null outside Google Cloud mode.
 */
export async function provisionCloudIdentity(
  deps: ProjectDeps,
  projectId: string,
): Promise<string | null> {
  if (!deps.gcp) return null;
  const identity = await provisionProjectIdentity({
    ...deps.gcp,
    projectId,
    prefix: projectPrefix(projectId),
  });
  const sealed = await deps.secrets.seal(identity.keyJson, cloudKeyContext(projectId));
  await recordCloudIdentity(deps.sql, projectId, { email: identity.email, sealedKey: sealed });
  return identity.keyJson;
}

export async function deprovisionCloudIdentity(deps: ProjectDeps, projectId: string) {
  if (!deps.gcp) return;
  await deprovisionProjectIdentity({ ...deps.gcp, projectId });
}

/** What the sandbox's environment says about its cloud identity (nothing outside the mode). */
export function cloudEnv(deps: ProjectDeps, projectId: string): Record<string, string> {
  if (!deps.gcp) return {};
  return {
    GOOGLE_APPLICATION_CREDENTIALS: CLOUD_KEY_PATH,
    POMODEX_GCS_BUCKET: deps.gcp.bucket,
    POMODEX_GCS_PREFIX: projectPrefix(projectId),
  };
}

/** The stored key of a project, opened, or null. */
export function openCloudKey(
  deps: ProjectDeps,
  row: Pick<ProjectRow, "id" | "gcpSaKeyEncrypted">,
): Promise<string | null> {
  if (!deps.gcp || !row.gcpSaKeyEncrypted) return Promise.resolve(null);
  return deps.secrets.open(row.gcpSaKeyEncrypted, cloudKeyContext(row.id));
}

/**
 * Puts the key into the container, readable by agent only, and its environment where login
 * shells (SSH, the web terminal) read it: sshd gives sessions a clean environment, so the
 * container's own Env would not reach them.
 */
export async function deliverCloudKey(
  engine: DockerClient,
  containerId: string,
  keyJson: string,
  env: Record<string, string>,
) {
  const profile = Object.entries(env).map(([k, v]) => `export ${k}='${v}'\n`).join("");
  await engine.putArchive(
    containerId,
    "/etc",
    makeTar([
      { name: "pomodex", type: "dir", mode: 0o755 },
      { name: "pomodex/gcp-key.json", data: keyJson, mode: 0o400 },
      { name: "profile.d/pomodex-gcp.sh", data: profile, mode: 0o644 },
    ]),
  );
  // The engine extracts as root; the key is agent's.
  const chown = await engine.exec(containerId, ["chown", "agent:agent", CLOUD_KEY_PATH], {
    user: "0",
  });
  if (chown.exitCode !== 0) throw new Error("could not hand the cloud key to agent");
}
