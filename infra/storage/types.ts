/** Workspace backup stores: one interface, a local-directory and a GCS implementation. */

export interface BackupObject {
  key: string;
  size: number;
  createdAt: Date;
}

export interface BackupStore {
  /** Stream `body` to `key` (replacing it). Never buffers the whole body. */
  put(key: string, body: ReadableStream<Uint8Array>): Promise<{ size: number }>;
  /** The object's bytes, or null when there is no such key. */
  get(key: string): Promise<ReadableStream<Uint8Array> | null>;
  /** Objects whose key starts with `prefix`, oldest first (ties by key). */
  list(prefix: string): Promise<BackupObject[]>;
  /** Remove `key`; a missing key is fine. */
  delete(key: string): Promise<void>;
  /** Remove every object under `prefix` (non-empty); returns how many. */
  deletePrefix(prefix: string): Promise<number>;
}

export class InvalidKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid backup key ${JSON.stringify(key.slice(0, 200))}: ${reason}`);
    this.name = "InvalidKeyError";
  }
}

const MAX_KEY_BYTES = 1024; // GCS object name limit

/**
 * Keys are relative slash-separated paths like `projects/<id>/backups/<timestamp>.tar.gz`.
 * Rejected: empty, absolute, `.`/`..`/empty segments, backslashes, NUL and other control
 * characters, over 1024 bytes. `allowTrailingSlash` is for prefixes.
 */
export function validateKey(key: string, opts: { prefix?: boolean } = {}): void {
  const fail = (reason: string) => {
    throw new InvalidKeyError(key, reason);
  };
  if (typeof key !== "string") fail("not a string");
  if (key === "") {
    if (opts.prefix) return;
    fail("empty");
  }
  if (new TextEncoder().encode(key).length > MAX_KEY_BYTES) fail("too long");
  if (key.includes("\0")) fail("contains NUL");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) fail("contains a control character");
  if (key.includes("\\")) fail("contains a backslash");
  if (key.startsWith("/") || /^[A-Za-z]:/.test(key)) fail("absolute path");
  const segments = key.split("/");
  if (opts.prefix && segments.at(-1) === "") segments.pop();
  for (const s of segments) {
    if (s === "..") fail("contains '..'");
    if (s === ".") fail("contains '.'");
    if (s === "") fail("contains an empty segment");
  }
}

/** Delete all but the newest `keep` objects under `prefix`; returns the deleted keys. */
export async function pruneBackups(
  store: BackupStore,
  prefix: string,
  keep: number,
): Promise<string[]> {
  if (!Number.isInteger(keep) || keep < 0) throw new RangeError("keep must be an integer >= 0");
  const objects = await store.list(prefix);
  const doomed = objects.slice(0, Math.max(0, objects.length - keep)).map((o) => o.key);
  for (const key of doomed) await store.delete(key);
  return doomed;
}

/** Oldest first; same time: by key (timestamped keys sort by time too). */
export function compareBackups(a: BackupObject, b: BackupObject): number {
  return a.createdAt.getTime() - b.createdAt.getTime() ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}
