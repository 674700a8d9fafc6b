/**
 * Per-project Google Cloud identities: one service account per Pomodex project, a JSON key
 * for it, and a conditional bucket IAM binding that limits it to the project's object prefix.
 *
 * REST: IAM v1 (projects.serviceAccounts.create / keys.create / keys.list / keys.delete /
 * delete) and the Cloud Storage JSON API (buckets.getIamPolicy / setIamPolicy).
 * Every step is idempotent and named after the project, so a retry finds what an earlier
 * attempt made; provisioning undoes what it made when a later step fails.
 */
import { parseServiceAccountKey } from "./credentials.ts";
import { GcpError } from "./errors.ts";
import { type GcpApiOptions, gcpRequest, iamUrl, storageUrl } from "./rest.ts";
import { isUuid } from "@/core/ids.ts";

export type { GcpApiOptions } from "./rest.ts";

export const OBJECT_ADMIN_ROLE = "roles/storage.objectAdmin";
export const CONDITION_TITLE = "pomodex-project-prefix";

/** Retry tuning (tests shorten the delays). */
export interface RetryOptions {
  /** First back-off delay; doubles each attempt. Default 500 ms. */
  retryDelayMs?: number;
}

type Opts = GcpApiOptions & RetryOptions;

/**
 * The service account id for a Pomodex project: `pdx-` + the first 24 hex digits of its
 * UUID. 28 characters, lowercase, starts with a letter (IAM: 6-30 chars,
 * `[a-z][-a-z0-9]*[a-z0-9]`); the same project always gets the same account.
 */
export function serviceAccountIdFor(projectId: string): string {
  if (!isUuid(projectId)) {
    throw new GcpError({
      status: 0,
      operation: "iam.accountId",
      googleMessage: "project id must be a UUID",
    });
  }
  return `pdx-${projectId.toLowerCase().replaceAll("-", "").slice(0, 24)}`;
}

/** The email IAM gives an account id in a project. */
export function serviceAccountEmailFor(accountId: string, gcpProject: string): string {
  return `${accountId}@${gcpProject}.iam.gserviceaccount.com`;
}

/** The default object prefix of a project in the backup bucket. */
export function projectPrefix(projectId: string): string {
  return `projects/${projectId}/`;
}

/** The IAM condition expression limiting a binding to objects under `prefix` in `bucket`. */
export function prefixConditionExpression(bucket: string, prefix: string): string {
  return `resource.name.startsWith("projects/_/buckets/${bucket}/objects/${prefix}")`;
}

interface ServiceAccountResource {
  name: string;
  email: string;
  uniqueId?: string;
  displayName?: string;
}

interface ServiceAccountKeyResource {
  name: string;
  privateKeyData?: string;
  keyType?: string;
}

export interface IamBinding {
  role: string;
  members: string[];
  condition?: { title?: string; description?: string; expression: string };
}

export interface BucketIamPolicy {
  kind?: string;
  resourceId?: string;
  version?: number;
  etag?: string;
  bindings?: IamBinding[];
}

function saPath(gcpProject: string, email: string): string {
  return `/v1/projects/${encodeURIComponent(gcpProject)}/serviceAccounts/${
    encodeURIComponent(email)
  }`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function backoff(opts: RetryOptions, attempt: number): Promise<void> {
  return sleep((opts.retryDelayMs ?? 500) * 2 ** attempt);
}

/**
 * Create the project's service account, or find it if an earlier attempt made it
 * (409 ALREADY_EXISTS). `created` says which.
 */
export async function ensureProjectServiceAccount(
  opts: Opts & { gcpProject: string; projectId: string; displayName?: string },
): Promise<{ email: string; accountId: string; created: boolean }> {
  const accountId = serviceAccountIdFor(opts.projectId);
  try {
    const sa = await gcpRequest<ServiceAccountResource>(
      opts,
      "iam.serviceAccounts.create",
      "POST",
      iamUrl(opts, `/v1/projects/${encodeURIComponent(opts.gcpProject)}/serviceAccounts`),
      {
        accountId,
        serviceAccount: {
          displayName: opts.displayName ?? `Pomodex project ${opts.projectId}`.slice(0, 100),
          description: `Pomodex sandbox identity for project ${opts.projectId}`,
        },
      },
    );
    return { email: sa.email, accountId, created: true };
  } catch (err) {
    if (err instanceof GcpError && err.status === 409) {
      return {
        email: serviceAccountEmailFor(accountId, opts.gcpProject),
        accountId,
        created: false,
      };
    }
    throw err;
  }
}

/**
 * Create a JSON key for a service account. `keyJson` is the key file's text (decoded from
 * `privateKeyData`); `keyName` is the key's resource name (for deletion).
 * A 404 right after the account was made is IAM's eventual consistency: retried briefly.
 */
export async function createServiceAccountKey(
  opts: Opts & { email: string; gcpProject?: string },
): Promise<{ keyJson: string; keyName: string }> {
  const url = iamUrl(opts, `${saPath(opts.gcpProject ?? "-", opts.email)}/keys`);
  for (let attempt = 0;; attempt++) {
    try {
      const key = await gcpRequest<ServiceAccountKeyResource>(
        opts,
        "iam.serviceAccounts.keys.create",
        "POST",
        url,
        { privateKeyType: "TYPE_GOOGLE_CREDENTIALS_FILE", keyAlgorithm: "KEY_ALG_RSA_2048" },
      );
      if (!key.privateKeyData) {
        throw new GcpError({
          status: 0,
          operation: "iam.serviceAccounts.keys.create",
          googleMessage: "response has no privateKeyData",
        });
      }
      const keyJson = new TextDecoder().decode(base64Decode(key.privateKeyData));
      parseServiceAccountKey(keyJson); // must be a usable key file
      return { keyJson, keyName: key.name };
    } catch (err) {
      if (err instanceof GcpError && err.status === 404 && attempt < 3) {
        await backoff(opts, attempt);
        continue;
      }
      throw err;
    }
  }
}

/** Resource names of the account's user-managed keys. */
export async function listServiceAccountKeys(
  opts: Opts & { email: string; gcpProject?: string },
): Promise<string[]> {
  const res = await gcpRequest<{ keys?: ServiceAccountKeyResource[] }>(
    opts,
    "iam.serviceAccounts.keys.list",
    "GET",
    iamUrl(opts, `${saPath(opts.gcpProject ?? "-", opts.email)}/keys?keyTypes=USER_MANAGED`),
  );
  return (res.keys ?? []).map((k) => k.name);
}

/** Delete a key by resource name; false if it was already gone. */
export async function deleteServiceAccountKey(opts: Opts & { keyName: string }): Promise<boolean> {
  if (!/^projects\/[^/]+\/serviceAccounts\/[^/]+\/keys\/[^/]+$/.test(opts.keyName)) {
    throw new GcpError({
      status: 0,
      operation: "iam.serviceAccounts.keys.delete",
      googleMessage: "not a service-account key resource name",
    });
  }
  const path = "/v1/" + opts.keyName.split("/").map(encodeURIComponent).join("/");
  try {
    await gcpRequest(opts, "iam.serviceAccounts.keys.delete", "DELETE", iamUrl(opts, path));
    return true;
  } catch (err) {
    if (err instanceof GcpError && err.status === 404) return false;
    throw err;
  }
}

/**
 * Create the project's service account (or find it) and a key for it. If the key cannot be
 * made, an account made by this call is deleted again.
 */
export async function createProjectServiceAccount(
  opts: Opts & { gcpProject: string; projectId: string; displayName?: string },
): Promise<{ email: string; keyJson: string; keyName: string; created: boolean }> {
  const sa = await ensureProjectServiceAccount(opts);
  try {
    const key = await createServiceAccountKey({ ...opts, email: sa.email });
    return { email: sa.email, ...key, created: sa.created };
  } catch (err) {
    if (sa.created) await deleteQuietly(opts, sa.email, opts.gcpProject);
    throw err;
  }
}

/** Delete a service account; false if it was already gone (404). */
export async function deleteProjectServiceAccount(
  opts: Opts & { email: string; gcpProject?: string },
): Promise<boolean> {
  try {
    await gcpRequest(
      opts,
      "iam.serviceAccounts.delete",
      "DELETE",
      iamUrl(opts, saPath(opts.gcpProject ?? "-", opts.email)),
    );
    return true;
  } catch (err) {
    if (err instanceof GcpError && err.status === 404) return false;
    throw err;
  }
}

async function deleteQuietly(opts: Opts, email: string, gcpProject?: string): Promise<void> {
  try {
    await deleteProjectServiceAccount({ ...opts, email, gcpProject });
  } catch {
    // Best effort: the original error is what the caller needs; the reconciler retries.
  }
}

function normalizePrefix(prefix: string): string {
  if (
    !prefix || prefix.startsWith("/") || /["\\\0]/.test(prefix) ||
    prefix.split("/").some((s) => s === "." || s === "..")
  ) {
    throw new GcpError({
      status: 0,
      operation: "storage.buckets.setIamPolicy",
      googleMessage: `invalid object prefix ${JSON.stringify(prefix)}`,
    });
  }
  return prefix.endsWith("/") ? prefix : prefix + "/";
}

function policyUrl(opts: Opts, bucket: string, query = ""): string {
  return storageUrl(opts, `/storage/v1/b/${encodeURIComponent(bucket)}/iam${query}`);
}

/** buckets.getIamPolicy, asking for version 3 so conditional bindings come back intact. */
export function getBucketIamPolicy(opts: Opts, bucket: string): Promise<BucketIamPolicy> {
  return gcpRequest<BucketIamPolicy>(
    opts,
    "storage.buckets.getIamPolicy",
    "GET",
    policyUrl(opts, bucket, "?optionsRequestedPolicyVersion=3"),
  );
}

/**
 * Read-modify-write of a bucket policy with the etag; retried when someone else wrote in
 * between (412, or 409 ABORTED). `change` returns null when there is nothing to do.
 */
async function updateBucketPolicy(
  opts: Opts,
  bucket: string,
  change: (policy: BucketIamPolicy) => BucketIamPolicy | null,
): Promise<boolean> {
  const maxAttempts = 5;
  for (let attempt = 0;; attempt++) {
    const current = await getBucketIamPolicy(opts, bucket);
    const next = change(structuredClone(current));
    if (!next) return false;
    const body: BucketIamPolicy = {
      bindings: next.bindings ?? [],
      etag: current.etag,
      version: next.version,
    };
    try {
      await gcpRequest(opts, "storage.buckets.setIamPolicy", "PUT", policyUrl(opts, bucket), body);
      return true;
    } catch (err) {
      const conflict = err instanceof GcpError && (err.status === 412 || err.status === 409);
      // A member that IAM does not know yet (a service account made seconds ago) is a 400.
      const unknownMember = err instanceof GcpError && err.status === 400 &&
        /does not exist/i.test(err.googleMessage);
      if ((conflict || unknownMember) && attempt + 1 < maxAttempts) {
        await backoff(opts, conflict ? Math.min(attempt, 2) : attempt);
        continue;
      }
      throw err;
    }
  }
}

/**
 * Give the account roles/storage.objectAdmin on objects under `prefix` of `bucket` only
 * (an IAM condition; needs uniform bucket-level access). Idempotent: an identical binding
 * is left alone. Returns false when it was already there.
 */
export async function grantPrefixAccess(
  opts: Opts & { bucket: string; email: string; prefix: string },
): Promise<boolean> {
  const prefix = normalizePrefix(opts.prefix);
  const member = `serviceAccount:${opts.email}`;
  const expression = prefixConditionExpression(opts.bucket, prefix);
  return await updateBucketPolicy(opts, opts.bucket, (policy) => {
    const bindings = policy.bindings ?? [];
    const present = bindings.some((b) =>
      b.role === OBJECT_ADMIN_ROLE && b.condition?.expression === expression &&
      b.members.includes(member)
    );
    if (present) return null;
    bindings.push({
      role: OBJECT_ADMIN_ROLE,
      members: [member],
      condition: {
        title: CONDITION_TITLE,
        description: `Pomodex: objects under ${prefix}`.slice(0, 256),
        expression,
      },
    });
    return { ...policy, bindings, version: 3 };
  });
}

/**
 * Remove the account from every binding of the bucket policy (also the `deleted:` form IAM
 * shows after the account is gone); bindings left empty are dropped. False if none had it.
 */
export async function revokePrefixAccess(
  opts: Opts & { bucket: string; email: string },
): Promise<boolean> {
  const member = `serviceAccount:${opts.email}`;
  const deletedMember = `deleted:serviceAccount:${opts.email}?uid=`;
  const matches = (m: string) => m === member || m.startsWith(deletedMember);
  return await updateBucketPolicy(opts, opts.bucket, (policy) => {
    const bindings = policy.bindings ?? [];
    if (!bindings.some((b) => b.members.some(matches))) return null;
    const kept = bindings
      .map((b) => ({ ...b, members: b.members.filter((m) => !matches(m)) }))
      .filter((b) => b.members.length > 0);
    const version = kept.some((b) => b.condition) ? 3 : (policy.version ?? 1);
    return { ...policy, bindings: kept, version };
  });
}

export interface ProjectIdentity {
  email: string;
  /** The key file text: store it encrypted, never log it. */
  keyJson: string;
  keyName: string;
  bucket: string;
  prefix: string;
}

/**
 * Service account + key + prefix-limited bucket grant for a project. If a step fails, what
 * this call made is undone (the account it created is deleted, or the key it added when the
 * account already existed) and the error is rethrown. A retry after a failure reuses the same
 * account and leaves only the new key.
 */
export async function provisionProjectIdentity(
  opts: Opts & {
    gcpProject: string;
    projectId: string;
    bucket: string;
    /** Default `projects/<projectId>/`. */
    prefix?: string;
    displayName?: string;
  },
): Promise<ProjectIdentity> {
  const prefix = normalizePrefix(opts.prefix ?? projectPrefix(opts.projectId));
  const sa = await ensureProjectServiceAccount(opts);
  let keyName: string | undefined;
  try {
    const key = await createServiceAccountKey({ ...opts, email: sa.email });
    keyName = key.keyName;
    await grantPrefixAccess({ ...opts, email: sa.email, prefix });
    if (!sa.created) {
      // Keys from earlier attempts were never handed out: remove them.
      const keys = await listServiceAccountKeys({ ...opts, email: sa.email });
      for (const name of keys) {
        if (name !== key.keyName) await deleteServiceAccountKey({ ...opts, keyName: name });
      }
    }
    return {
      email: sa.email,
      keyJson: key.keyJson,
      keyName: key.keyName,
      bucket: opts.bucket,
      prefix,
    };
  } catch (err) {
    if (sa.created) {
      await deleteQuietly(opts, sa.email, opts.gcpProject);
    } else if (keyName) {
      await deleteServiceAccountKey({ ...opts, keyName }).catch(() => {});
    }
    throw err;
  }
}

/**
 * Undo provisionProjectIdentity: revoke the bucket binding, then delete the account.
 * Already-gone parts (404) are fine. Pass the stored email, or the project id to derive it.
 */
export async function deprovisionProjectIdentity(
  opts: Opts & { gcpProject: string; bucket: string; email?: string; projectId?: string },
): Promise<{ revoked: boolean; deleted: boolean }> {
  const email = opts.email ??
    (opts.projectId
      ? serviceAccountEmailFor(serviceAccountIdFor(opts.projectId), opts.gcpProject)
      : undefined);
  if (!email) {
    throw new GcpError({
      status: 0,
      operation: "iam.deprovision",
      googleMessage: "email or projectId is required",
    });
  }
  let revoked = false;
  try {
    revoked = await revokePrefixAccess({ ...opts, email });
  } catch (err) {
    if (!(err instanceof GcpError && err.status === 404)) throw err;
  }
  const deleted = await deleteProjectServiceAccount({ ...opts, email });
  return { revoked, deleted };
}

function base64Decode(b64: string): Uint8Array {
  const bin = atob(b64.replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
