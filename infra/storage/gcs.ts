/**
 * Backups in a Google Cloud Storage bucket through @google-cloud/storage: streaming
 * uploads (single multipart request, CRC32C-validated by the library), streaming downloads,
 * paginated listing and deletes. Library errors become GcpError (no request details, so no
 * token can leak into a message or log).
 *
 * Timeouts are ours: the library's `timeout` option does nothing here (its HTTP layer,
 * teeny-request, hands it to node-fetch 3, which dropped that option). Metadata, list and
 * delete calls get a deadline; uploads and downloads fail after `timeoutMs` without progress.
 */
import { Readable, Transform } from "node:stream";
import type { ReadableStream as NodeWebReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import { type File, Storage } from "@google-cloud/storage";
import type { AuthClient } from "google-auth-library";
import { GcpError, gcpErrorFromThrown } from "@/infra/gcp/errors.ts";
import {
  type BackupObject,
  type BackupStore,
  compareBackups,
  InvalidKeyError,
  validateKey,
} from "./types.ts";

export interface GcsStorageOptions {
  /** google-auth-library client, e.g. `(await loadCredentials(path)).authClient`. */
  authClient: AuthClient;
  /** Default https://storage.googleapis.com (the library's own default). */
  apiEndpoint?: string;
  /** Project for billing headers; not needed for object operations. */
  projectId?: string;
}

/**
 * A Storage client. With a custom `apiEndpoint` the library skips authentication unless
 * told `useAuthWithCustomEndpoint`; we always want the bearer token sent.
 */
export function createGcsStorage(opts: GcsStorageOptions): Storage {
  return new Storage({
    authClient: opts.authClient,
    projectId: opts.projectId,
    ...(opts.apiEndpoint ? { apiEndpoint: opts.apiEndpoint, useAuthWithCustomEndpoint: true } : {}),
  });
}

export interface GcsBackupStoreOptions {
  bucket: string;
  /** A @google-cloud/storage client (see createGcsStorage). */
  storage: Storage;
  /** Default application/gzip. */
  contentType?: string;
  /** Deadline of metadata/list/delete calls, and the longest a transfer may stall. 60 s. */
  timeoutMs?: number;
}

export class GcsBackupStore implements BackupStore {
  readonly bucket: string;
  readonly #storage: Storage;
  readonly #contentType: string;
  readonly #timeoutMs: number;

  constructor(opts: GcsBackupStoreOptions) {
    if (!opts.bucket) throw new Error("GcsBackupStore needs a bucket");
    this.bucket = opts.bucket;
    this.#storage = opts.storage;
    this.#contentType = opts.contentType ?? "application/gzip";
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
  }

  #file(key: string, generation?: string | number): File {
    return this.#storage.bucket(this.bucket).file(key, generation ? { generation } : undefined);
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<{ size: number }> {
    validateKey(key);
    const operation = "storage.objects.insert";
    const file = this.#file(key);
    let size = 0;
    let lastProgress = Date.now();
    const counter = new Transform({
      transform(chunk: Uint8Array, _enc, cb) {
        size += chunk.length;
        lastProgress = Date.now();
        cb(null, chunk);
      },
    });
    const upload = file.createWriteStream({
      resumable: false,
      validation: "crc32c",
      metadata: { contentType: this.#contentType },
    });
    // Stall watchdog: no bytes moved (or no answer after the last one) for timeoutMs.
    const timeoutMs = this.#timeoutMs;
    const watchdog = setInterval(() => {
      if (Date.now() - lastProgress > timeoutMs) {
        upload.destroy(timeoutError(`no upload progress for ${timeoutMs} ms`));
      }
    }, Math.max(10, Math.min(1000, timeoutMs / 4)));
    const source = Readable.fromWeb(body as NodeWebReadableStream<Uint8Array>);
    try {
      await pipeline(source, counter, upload);
    } catch (err) {
      throw toGcpError(operation, err);
    } finally {
      clearInterval(watchdog);
    }
    const stored = Number(file.metadata?.size ?? size);
    if (stored !== size) {
      throw new GcpError({
        status: 0,
        operation,
        googleMessage: `stored size ${stored} differs from the ${size} bytes sent`,
      });
    }
    return { size };
  }

  async get(key: string): Promise<ReadableStream<Uint8Array> | null> {
    validateKey(key);
    const operation = "storage.objects.get";
    let generation: string | number | undefined;
    try {
      const [meta] = await this.#deadline(operation, this.#file(key).getMetadata());
      generation = meta.generation;
    } catch (err) {
      if (err instanceof GcpError && err.status === 404) return null;
      throw err;
    }
    // Pin the generation we saw, so a concurrent overwrite cannot mix two versions.
    const stream = this.#file(key, generation).createReadStream({ validation: "crc32c" });
    return nodeToWeb(stream, operation, this.#timeoutMs);
  }

  async list(prefix: string): Promise<BackupObject[]> {
    validateKey(prefix, { prefix: true });
    const [files] = await this.#deadline(
      "storage.objects.list",
      this.#storage.bucket(this.bucket).getFiles({ prefix, autoPaginate: true }),
    );
    return files.map((f) => ({
      key: f.name,
      size: Number(f.metadata.size ?? 0),
      createdAt: new Date(String(f.metadata.timeCreated ?? 0)),
    })).sort(compareBackups);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.#deadline(
      "storage.objects.delete",
      this.#file(key).delete({ ignoreNotFound: true }),
    );
  }

  async deletePrefix(prefix: string): Promise<number> {
    validateKey(prefix, { prefix: true });
    if (!prefix) throw new InvalidKeyError(prefix, "deletePrefix needs a non-empty prefix");
    const objects = await this.list(prefix);
    for (const o of objects) await this.delete(o.key);
    return objects.length;
  }

  /** Settle with `work`, or reject with a timeout GcpError; library errors mapped. */
  #deadline<T>(operation: string, work: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(toGcpError(operation, timeoutError(`timed out after ${this.#timeoutMs} ms`))),
        this.#timeoutMs,
      );
    });
    const mapped = work.catch((err) => {
      throw toGcpError(operation, err);
    });
    mapped.catch(() => {}); // a late failure after the deadline is not unhandled
    return Promise.race([mapped, expired]).finally(() => clearTimeout(timer));
  }
}

function timeoutError(message: string): Error {
  const err = new Error(message);
  err.name = "TimeoutError";
  return err;
}

function toGcpError(operation: string, err: unknown): GcpError {
  if (err instanceof GcpError) return err;
  const e = err as { code?: unknown; message?: string; name?: string };
  if (e?.name === "TimeoutError") {
    return new GcpError({ status: 0, operation, googleMessage: e.message ?? "timed out" });
  }
  // ApiError.code is the HTTP status; other codes (e.g. "FILE_NO_UPLOAD") are not.
  return gcpErrorFromThrown(operation, {
    code: typeof e?.code === "number" ? e.code : undefined,
    message: e?.message ?? String(err),
  });
}

/**
 * A Node readable as a web stream, pulled on demand; errors become GcpError, and a read that
 * yields nothing for `idleMs` fails the stream.
 */
function nodeToWeb(
  stream: Readable,
  operation: string,
  idleMs: number,
): ReadableStream<Uint8Array> {
  const it = stream[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const next = it.next();
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const err = timeoutError(`no download progress for ${idleMs} ms`);
            stream.destroy(err);
            reject(err);
          }, idleMs);
        });
        const { done, value } = await Promise.race([next, stalled]);
        if (done) controller.close();
        else {
          const chunk = value as Uint8Array;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        }
      } catch (err) {
        controller.error(toGcpError(operation, err));
      } finally {
        clearTimeout(timer);
      }
    },
    async cancel() {
      stream.destroy();
      await it.return?.().catch(() => {});
    },
  }, { highWaterMark: 0 });
}
