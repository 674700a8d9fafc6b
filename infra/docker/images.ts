import { type DockerError, engineMessageOf, errorFromStatus } from "./errors.ts";
import { drainProgress } from "./streams.ts";
import { refPath, type Transport } from "./transport.ts";
import type { ImageInfo, ImageSummary, ProgressEvent, RegistryAuth } from "./types.ts";

const LONG_MS = 10 * 60_000;

/**
 * "host:5000/a/b:tag" -> name "host:5000/a/b", tag "tag". A bare name gets "latest":
 * an empty tag would make the engine pull or push every tag of the repository.
 */
export function splitRef(ref: string): { name: string; tag: string } {
  const at = ref.indexOf("@");
  if (at >= 0) return { name: ref.slice(0, at), tag: ref.slice(at + 1) };
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { name: ref, tag: "latest" };
}

/** base64url of the JSON credentials; `{}` for anonymous, which Podman's push requires. */
export function registryAuthHeader(auth?: RegistryAuth): string {
  const bytes = new TextEncoder().encode(JSON.stringify(auth ?? {}));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_");
}

/**
 * Stream errors carry no status. A registry that lacks the image is worth telling apart
 * (a snapshot that was never pushed), so those become 404 / DockerNotFound.
 */
function streamError(op: string, message: string): DockerError {
  const missing = /manifest unknown|name unknown|not found/i.test(message);
  return errorFromStatus(missing ? 404 : 500, op, message);
}

export interface TransferOptions {
  auth?: RegistryAuth;
  onProgress?: (p: ProgressEvent) => void;
  /** Default 10 minutes. */
  timeoutMs?: number;
}

export function inspectImage(t: Transport, ref: string): Promise<ImageInfo | null> {
  return t.jsonOrNull<ImageInfo>("image inspect", "GET", `/images/${refPath(ref)}/json`);
}

/** Local images whose reference matches `reference` (a repository, optionally with a tag). */
export function listImages(t: Transport, reference: string): Promise<ImageSummary[]> {
  return t.json<ImageSummary[]>("list images", "GET", "/images/json", {
    query: { filters: JSON.stringify({ reference: [reference] }) },
  });
}

export async function pullImage(t: Transport, ref: string, opts: TransferOptions = {}) {
  const op = `pull ${ref}`;
  const { name, tag } = splitRef(ref);
  const query = ref.includes("@") ? { fromImage: ref } : { fromImage: name, tag };
  const { body } = await t.stream(op, "POST", "/images/create", {
    query,
    headers: { "X-Registry-Auth": registryAuthHeader(opts.auth) },
    timeoutMs: opts.timeoutMs ?? LONG_MS,
  });
  const error = await drainProgress(body, opts.onProgress);
  // 200 was sent before the pull began; the real outcome is in the stream.
  if (error) throw streamError(op, error);
}

export async function pushImage(t: Transport, ref: string, opts: TransferOptions = {}) {
  const op = `push ${ref}`;
  const { name, tag } = splitRef(ref);
  const { body } = await t.stream(op, "POST", `/images/${refPath(name)}/push`, {
    query: { tag },
    headers: { "X-Registry-Auth": registryAuthHeader(opts.auth) },
    timeoutMs: opts.timeoutMs ?? LONG_MS,
  });
  const error = await drainProgress(body, opts.onProgress);
  if (error) throw streamError(op, error);
}

export async function tagImage(t: Transport, source: string, repo: string, tag: string) {
  await t.expect(`tag ${source}`, "POST", `/images/${refPath(source)}/tag`, {
    query: { repo, tag },
  });
}

/** False when there was nothing to remove, so cleanup code can be idempotent. */
export async function removeImage(
  t: Transport,
  ref: string,
  opts: { force?: boolean; noprune?: boolean } = {},
): Promise<boolean> {
  const op = `remove image ${ref}`;
  const r = await t.send(op, "DELETE", `/images/${refPath(ref)}`, {
    query: { force: opts.force, noprune: opts.noprune },
  });
  if (r.status === 404) return false;
  if (r.status >= 300) {
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }
  return true;
}

export interface CommitOptions {
  repo: string;
  tag: string;
  comment?: string;
  /** Pause the container while committing (the engine's default is true). */
  pause?: boolean;
  /** Default 10 minutes: committing a large writable layer takes a while. */
  timeoutMs?: number;
}

export async function commitContainer(
  t: Transport,
  containerId: string,
  opts: CommitOptions,
): Promise<{ id: string }> {
  const r = await t.json<{ Id: string }>(`commit ${containerId}`, "POST", "/commit", {
    query: {
      container: containerId,
      repo: opts.repo,
      tag: opts.tag,
      comment: opts.comment,
      pause: opts.pause,
    },
    // Podman decodes a container config from the body and fails on an empty one.
    json: {},
    timeoutMs: opts.timeoutMs ?? LONG_MS,
  });
  return { id: r.Id };
}
