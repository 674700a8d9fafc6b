/**
 * Backups as files under a root directory (the zero-setup default). Writes go to a temp file
 * in `<root>/.partial/` (same filesystem) and are renamed into place after fsync, so a crash
 * never leaves a half-written file under a final name.
 */
import {
  type BackupObject,
  type BackupStore,
  compareBackups,
  InvalidKeyError,
  validateKey,
} from "./types.ts";

const PARTIAL_DIR = ".partial";

export class LocalBackupStore implements BackupStore {
  readonly rootDir: string;

  constructor(rootDir: string) {
    if (!rootDir) throw new Error("LocalBackupStore needs a root directory");
    this.rootDir = rootDir.replace(/\/+$/, "") || "/";
  }

  #check(key: string, prefix = false): void {
    validateKey(key, { prefix });
    if (key === PARTIAL_DIR || key.startsWith(PARTIAL_DIR + "/")) {
      throw new InvalidKeyError(key, `'${PARTIAL_DIR}' is reserved`);
    }
  }

  #path(key: string): string {
    return `${this.rootDir}/${key}`;
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<{ size: number }> {
    this.#check(key);
    const finalPath = this.#path(key);
    const partialDir = `${this.rootDir}/${PARTIAL_DIR}`;
    await Deno.mkdir(partialDir, { recursive: true });
    const tmp = `${partialDir}/${crypto.randomUUID()}`;
    const reader = body.getReader();
    let file: Deno.FsFile | undefined;
    let size = 0;
    try {
      file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let off = 0;
        while (off < value.length) off += await file.write(value.subarray(off));
        size += value.length;
      }
      await file.syncData();
      file.close();
      file = undefined;
      await this.#renameIntoPlace(tmp, finalPath);
      return { size };
    } catch (err) {
      try {
        file?.close();
      } catch { /* already closed */ }
      await reader.cancel(err).catch(() => {});
      await Deno.remove(tmp).catch(() => {});
      throw err;
    } finally {
      reader.releaseLock();
    }
  }

  async #renameIntoPlace(tmp: string, finalPath: string): Promise<void> {
    const dir = finalPath.slice(0, finalPath.lastIndexOf("/"));
    // A concurrent deletePrefix may remove the (empty) directory between mkdir and rename.
    for (let attempt = 0;; attempt++) {
      await Deno.mkdir(dir, { recursive: true });
      try {
        await Deno.rename(tmp, finalPath);
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound && attempt < 3) continue;
        throw err;
      }
    }
  }

  async get(key: string): Promise<ReadableStream<Uint8Array> | null> {
    this.#check(key);
    try {
      const file = await Deno.open(this.#path(key), { read: true });
      const info = await file.stat();
      if (!info.isFile) {
        file.close();
        return null;
      }
      return file.readable;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        return null;
      }
      throw err;
    }
  }

  async list(prefix: string): Promise<BackupObject[]> {
    this.#check(prefix, true);
    // Walk only the deepest directory the prefix names, then filter by the full prefix.
    const slash = prefix.lastIndexOf("/");
    const baseRel = slash >= 0 ? prefix.slice(0, slash) : "";
    const out: BackupObject[] = [];
    const walk = async (rel: string): Promise<void> => {
      const abs = rel ? this.#path(rel) : this.rootDir;
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(abs));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
        throw err;
      }
      for (const entry of entries) {
        const key = rel ? `${rel}/${entry.name}` : entry.name;
        if (!rel && entry.name === PARTIAL_DIR) continue;
        if (entry.isDirectory) {
          if ((key + "/").startsWith(prefix) || prefix.startsWith(key + "/")) await walk(key);
        } else if (entry.isFile && key.startsWith(prefix)) {
          try {
            const info = await Deno.stat(this.#path(key));
            out.push({ key, size: info.size, createdAt: info.mtime ?? new Date(0) });
          } catch (err) {
            if (!(err instanceof Deno.errors.NotFound)) throw err; // deleted meanwhile
          }
        }
      }
    };
    await walk(baseRel);
    return out.sort(compareBackups);
  }

  async delete(key: string): Promise<void> {
    this.#check(key);
    try {
      await Deno.remove(this.#path(key));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
      throw err;
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    this.#check(prefix, true);
    if (!prefix) throw new InvalidKeyError(prefix, "deletePrefix needs a non-empty prefix");
    const objects = await this.list(prefix);
    for (const o of objects) await this.delete(o.key);
    // Tidy directories left empty (deepest first); non-empty ones stay (remove fails).
    const dirs = new Set<string>();
    for (const o of objects) {
      const parts = o.key.split("/");
      for (let i = parts.length - 1; i > 0; i--) dirs.add(parts.slice(0, i).join("/"));
    }
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      await Deno.remove(this.#path(dir)).catch(() => {});
    }
    return objects.length;
  }
}
