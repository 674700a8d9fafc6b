import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type BackupStore,
  InvalidKeyError,
  LocalBackupStore,
  pruneBackups,
  validateKey,
} from "@/infra/storage/mod.ts";

const enc = new TextEncoder();

async function withStore(fn: (store: LocalBackupStore, root: string) => Promise<void>) {
  await using cleanup = new AsyncDisposableStack();
  const parent = await Deno.makeTempDir({ prefix: "pomodex-storage-test-" });
  cleanup.defer(() => Deno.remove(parent, { recursive: true }));
  const root = `${parent}/root`;
  await fn(new LocalBackupStore(root), root);
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  return new Blob([text]).stream();
}

async function readText(store: BackupStore, key: string): Promise<string | null> {
  const s = await store.get(key);
  return s ? await new Response(s).text() : null;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("local store: put, get, list, delete round trip", async () => {
  await withStore(async (store, root) => {
    const key = "projects/p1/backups/2024-01-01T00-00-00Z.tar.gz";
    assert.deepEqual(await store.put(key, streamOf("hello backup")), { size: 12 });
    assert.equal(await readText(store, key), "hello backup");
    assert.equal(await Deno.readTextFile(`${root}/${key}`), "hello backup");

    const listed = await store.list("projects/p1/");
    assert.equal(listed.length, 1);
    assert.equal(listed[0].key, key);
    assert.equal(listed[0].size, 12);
    assert.ok(listed[0].createdAt instanceof Date && !isNaN(listed[0].createdAt.getTime()));

    // Overwrite replaces.
    assert.deepEqual(await store.put(key, streamOf("v2")), { size: 2 });
    assert.equal(await readText(store, key), "v2");

    await store.delete(key);
    assert.equal(await store.get(key), null);
    assert.deepEqual(await store.list("projects/p1/"), []);
    // Missing is fine, twice.
    await store.delete(key);
    await store.delete("projects/never/was.tar.gz");
    assert.equal(await store.get("projects/never/was.tar.gz"), null);
    assert.deepEqual(await store.list("nothing/here/"), []);
  });
});

Deno.test("local store: list filters by prefix and sorts oldest first", async () => {
  await withStore(async (store, root) => {
    const keys = {
      old: "projects/a/backups/zzz.tar.gz",
      mid: "projects/a/backups/mmm.tar.gz",
      nu: "projects/a/backups/aaa.tar.gz",
      other: "projects/ab/backups/x.tar.gz",
      nested: "projects/a/backups/2024/deep.tar.gz",
    };
    for (const k of Object.values(keys)) await store.put(k, streamOf(k));
    // Times decide the order, not names.
    const t = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s));
    await Deno.utime(`${root}/${keys.old}`, t(1), t(1));
    await Deno.utime(`${root}/${keys.mid}`, t(2), t(2));
    await Deno.utime(`${root}/${keys.nested}`, t(3), t(3));
    await Deno.utime(`${root}/${keys.nu}`, t(4), t(4));

    const listed = await store.list("projects/a/");
    assert.deepEqual(listed.map((o) => o.key), [keys.old, keys.mid, keys.nested, keys.nu]);
    assert.deepEqual(
      listed.map((o) => o.createdAt.getTime()),
      [1, 2, 3, 4].map((s) => t(s).getTime()),
    );
    assert.equal(listed[0].size, keys.old.length);

    // A prefix that is not a directory boundary: "projects/a" matches a/ and ab/.
    assert.equal((await store.list("projects/a")).length, 5);
    // A partial file-name prefix.
    assert.deepEqual((await store.list("projects/a/backups/m")).map((o) => o.key), [keys.mid]);
    // Everything, but never the temp area.
    assert.equal((await store.list("")).length, 5);
  });
});

Deno.test("local store: deletePrefix and pruneBackups", async () => {
  await withStore(async (store, root) => {
    for (let i = 1; i <= 5; i++) {
      const key = `projects/p/backups/${i}.tar.gz`;
      await store.put(key, streamOf(`b${i}`));
      const when = new Date(Date.UTC(2024, 0, 1, 0, 0, i));
      await Deno.utime(`${root}/${key}`, when, when);
    }
    await store.put("projects/q/backups/1.tar.gz", streamOf("q"));

    const deleted = await pruneBackups(store, "projects/p/backups/", 2);
    assert.deepEqual(deleted, [1, 2, 3].map((i) => `projects/p/backups/${i}.tar.gz`));
    assert.deepEqual(
      (await store.list("projects/p/")).map((o) => o.key),
      ["projects/p/backups/4.tar.gz", "projects/p/backups/5.tar.gz"],
    );
    assert.deepEqual(await pruneBackups(store, "projects/p/backups/", 2), []);
    await assert.rejects(() => pruneBackups(store, "projects/p/", -1), RangeError);

    assert.equal(await store.deletePrefix("projects/p/"), 2);
    assert.deepEqual(await store.list("projects/p/"), []);
    assert.equal(await exists(`${root}/projects/p`), false, "empty directories are tidied");
    assert.equal(await readText(store, "projects/q/backups/1.tar.gz"), "q", "other prefixes stay");
    assert.equal(await store.deletePrefix("projects/p/"), 0);
    await assert.rejects(() => store.deletePrefix(""), InvalidKeyError);
  });
});

Deno.test("local store: path traversal and malformed keys are rejected", async () => {
  await withStore(async (store, root) => {
    const parent = root.slice(0, root.lastIndexOf("/"));
    const bad = [
      "../escape.tar.gz",
      "projects/../../escape.tar.gz",
      "projects/p/..",
      "/etc/passwd",
      "/tmp/abs.tar.gz",
      "projects\\p\\x.tar.gz",
      "..\\escape",
      "projects/p/x\0.tar.gz",
      "projects//x.tar.gz",
      "projects/./x.tar.gz",
      "",
      ".partial/x",
      "C:/windows/x",
    ];
    for (const key of bad) {
      await assert.rejects(() => store.put(key, streamOf("x")), InvalidKeyError, `put ${key}`);
      await assert.rejects(() => store.get(key), InvalidKeyError, `get ${key}`);
      await assert.rejects(() => store.delete(key), InvalidKeyError, `delete ${key}`);
    }
    await assert.rejects(() => store.list("../"), InvalidKeyError);
    await assert.rejects(() => store.deletePrefix("projects/../"), InvalidKeyError);
    assert.throws(() => validateKey("a".repeat(1025)), InvalidKeyError);
    validateKey("projects/p/backups/2024-01-01T00:00:00Z.tar.gz");
    validateKey("projects/p/", { prefix: true });
    // Nothing was written outside the root (nor inside it).
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(parent))).map((e) => e.name).sort(),
      await exists(root) ? ["root"] : [],
    );
    assert.equal(await exists(`${parent}/escape.tar.gz`), false);
  });
});

Deno.test("local store: a failed upload leaves no file under the final name", async () => {
  await withStore(async (store, root) => {
    const key = "projects/p/backups/1.tar.gz";
    await store.put(key, streamOf("good old backup"));
    let pulls = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulls > 3) controller.error(new Error("tar died"));
        else controller.enqueue(enc.encode("partial data "));
      },
    });
    await assert.rejects(() => store.put(key, failing), /tar died/);
    assert.equal(await readText(store, key), "good old backup", "the previous version survives");

    const failingNew = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(enc.encode("half"));
        controller.error(new Error("disk gone"));
      },
    });
    await assert.rejects(() => store.put("projects/p/backups/2.tar.gz", failingNew), /disk gone/);
    assert.equal(await exists(`${root}/projects/p/backups/2.tar.gz`), false);
    assert.deepEqual((await store.list("projects/p/")).map((o) => o.key), [key]);
    assert.deepEqual(
      await Array.fromAsync(Deno.readDir(`${root}/.partial`)),
      [],
      "temp files removed",
    );
  });
});

Deno.test("local store: a 20 MB body is streamed to disk, not buffered whole", async () => {
  await withStore(async (store, root) => {
    const key = "projects/p/backups/big.tar.gz";
    const chunkSize = 64 * 1024;
    const total = 20 * 1024 * 1024;
    const chunk = new Uint8Array(chunkSize);
    let produced = 0;
    let maxLag = 0;
    let checks = 0;
    const sent = createHash("sha256");
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (produced >= total) return controller.close();
        // While the upload runs, the temp file must already hold nearly all bytes sent.
        if (produced > 0 && produced % (2 * 1024 * 1024) === 0) {
          const partials = await Array.fromAsync(Deno.readDir(`${root}/.partial`));
          assert.equal(partials.length, 1);
          const onDisk = (await Deno.stat(`${root}/.partial/${partials[0].name}`)).size;
          maxLag = Math.max(maxLag, produced - onDisk);
          checks++;
        }
        crypto.getRandomValues(chunk.subarray(0, 1024)); // vary content cheaply
        const out = chunk.slice();
        sent.update(out);
        produced += out.length;
        controller.enqueue(out);
      },
    }, { highWaterMark: 0 });

    assert.deepEqual(await store.put(key, body), { size: total });
    assert.ok(checks >= 9, `checked ${checks} times`);
    assert.ok(maxLag <= 2 * chunkSize, `at most two chunks in flight, saw ${maxLag} bytes`);
    assert.equal((await Deno.stat(`${root}/${key}`)).size, total);

    // Read back as a stream, hashing as it goes.
    const got = createHash("sha256");
    let read = 0;
    for await (const part of (await store.get(key))!) {
      got.update(part);
      read += part.length;
    }
    assert.equal(read, total);
    assert.equal(got.digest("hex"), sent.digest("hex"));
    assert.deepEqual((await store.list("projects/p/")).map((o) => o.size), [total]);
  });
});

Deno.test("local store: concurrent puts of one key leave one whole version", async () => {
  await withStore(async (store) => {
    const key = "projects/p/backups/race.tar.gz";
    const a = "a".repeat(100_000);
    const b = "b".repeat(50_000);
    await Promise.all([store.put(key, streamOf(a)), store.put(key, streamOf(b))]);
    const text = await readText(store, key);
    assert.ok(text === a || text === b);
  });
});

Deno.test("local store: a cancelled download releases the file", async () => {
  await withStore(async (store) => {
    const key = "projects/p/backups/1.tar.gz";
    await store.put(key, streamOf("x".repeat(1_000_000)));
    const stream = (await store.get(key))!;
    const reader = stream.getReader();
    await reader.read();
    await reader.cancel();
    // Sanitizers fail the test if the file handle leaked.
  });
});
