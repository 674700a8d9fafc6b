// The scheduled workspace backup job (jobs/mod.ts runBackups): which projects one run
// backs up, what lands in the backup store, retention, and two instances racing.
import assert from "node:assert/strict";
import { runBackups } from "@/jobs/mod.ts";
import { silentLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp, type TestUser } from "./helpers/users.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

const minutes = (n: number) => n * 60_000;
interface BackupStatus {
  last_backup_at: string | null;
  last_backup_size_bytes: number | null;
  backups: { key: string; size: number; created_at: string }[];
}

async function backupStatus(h: TestApp, user: TestUser, id: string): Promise<BackupStatus> {
  const res = await call(h, user, "GET", `/projects/${id}/backup-status`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/** The key backupWorkspace gives a backup taken at `at`. */
const keyAt = (id: string, at: Date) =>
  `projects/${id}/backups/${at.toISOString().replace(/[:.]/g, "-")}.tar.gz`;

/**
 * As if the project had been made `ago` ms back and the job had last backed it up `triedAgo`
 * back (null: never).
 */
async function age(h: TestApp, id: string, ago: number, triedAgo: number | null = null) {
  const tried = triedAgo === null ? null : new Date(Date.now() - triedAgo);
  await h.sql`UPDATE projects SET created_at = now() - ${ago / 1000} * interval '1 second',
      backup_attempted_at = ${tried} WHERE id = ${id}`;
}

/** The regular files of a .tar.gz in the backup store: path to contents. */
async function filesInBackup(h: TestApp, key: string): Promise<Map<string, string>> {
  const file = await Deno.open(`${h.dataDir}/backups/${key}`, { read: true });
  const gunzip = new DecompressionStream("gzip") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const tar = new Uint8Array(await new Response(file.readable.pipeThrough(gunzip)).arrayBuffer());
  return untar(tar);
}

/** Just enough tar (ustar, PAX and GNU long names) to read a workspace archive. */
function untar(tar: Uint8Array): Map<string, string> {
  const dec = new TextDecoder();
  const str = (b: Uint8Array) => dec.decode(b).replace(/\0.*$/s, "");
  const out = new Map<string, string>();
  let longName: string | null = null;
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(str(header.subarray(124, 136)).trim() || "0", 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = str(header.subarray(345, 500));
    const name = longName ?? (prefix ? `${prefix}/` : "") + str(header.subarray(0, 100));
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      const path = dec.decode(data).match(/^\d+ path=(.*)$/m);
      longName = path ? path[1] : null;
      continue;
    }
    if (type === "L") {
      longName = str(data);
      continue;
    }
    longName = null;
    if (type === "0") out.set(name.replace(/^\.\//, ""), dec.decode(data));
  }
  return out;
}

engineTest(
  "the backup job backs up due running projects once, skips recent and stopped ones, keeps the newest BACKUP_KEEP",
  async () => {
    await using h = await createTestApp({ BACKUP_KEEP: "3", BACKUP_INTERVAL_MINUTES: "60" });
    using engine = await requireEngine();
    const user = await signUp(h);
    const due = await createRunning(h, user, "due");
    const young = await createRunning(h, user, "made-just-now");
    const stopped = await createRunning(h, user, "stopped");
    const write = async (content: string) => {
      const r = await sshRun(
        due,
        due.ssh_private_key,
        `mkdir -p ~/notes && printf '%s' '${content}' > ~/notes/backup-me.txt`,
      );
      assert.equal(r.code, 0, r.stderr);
    };
    await write("first version");

    // A stop backs up and snapshots; the job must leave a stopped project alone after that.
    const stop = await call(h, user, "POST", `/projects/${stopped.id}/stop`);
    assert.equal(stop.status, 200, JSON.stringify(stop.body));
    const stoppedBefore = await backupStatus(h, user, stopped.id);
    assert.equal(stoppedBefore.backups.length, 1, "a backup on stop");

    // `due` was last backed up 61 minutes ago (interval 60); `stopped` is as old.
    await age(h, due.id, minutes(180), minutes(61));
    await age(h, stopped.id, minutes(180), minutes(61));
    assert.equal((await backupStatus(h, user, due.id)).backups.length, 0);

    const before = Date.now();
    const first = await runBackups(h.deps);
    const after = Date.now();
    assert.deepEqual(first, [due.id], "only the due running project");

    const status = await backupStatus(h, user, due.id);
    assert.equal(status.backups.length, 1);
    const [backup] = status.backups;
    assert.match(backup.key, new RegExp(`^projects/${due.id}/backups/[0-9TZ-]+\\.tar\\.gz$`));
    assert.ok(status.last_backup_at, "last_backup_at is set");
    const at = Date.parse(status.last_backup_at);
    assert.ok(at >= before - 1 && at <= after + 1, `last_backup_at ${status.last_backup_at}`);
    assert.equal(backup.key, keyAt(due.id, new Date(at)));
    assert.ok(backup.size > 0);
    assert.equal(status.last_backup_size_bytes, backup.size);
    const onDisk = await Deno.stat(`${h.dataDir}/backups/${backup.key}`);
    assert.equal(onDisk.size, backup.size, "the store holds what backup-status reports");
    const files = await filesInBackup(h, backup.key);
    assert.equal(
      files.get("agent/notes/backup-me.txt"),
      "first version",
      [...files.keys()].join(),
    );

    // Right after: nothing is due. Not `due` (just backed up), not `young` (made less than
    // an interval ago), not `stopped` (not running).
    assert.deepEqual(await runBackups(h.deps), []);
    assert.deepEqual(await runBackups(h.deps, new Date(Date.now() + minutes(30))), []);
    assert.equal((await backupStatus(h, user, due.id)).backups.length, 1);
    assert.equal((await backupStatus(h, user, young.id)).backups.length, 0);
    const stoppedAfter = await backupStatus(h, user, stopped.id);
    assert.deepEqual(stoppedAfter, stoppedBefore, "the stopped project was not touched");

    // Retention: four more rounds an interval apart, each with new content; BACKUP_KEEP=3.
    const rounds: Date[] = [new Date(at)];
    for (let i = 1; i <= 4; i++) {
      await write(`version ${i + 1}`);
      const now = new Date(at + i * minutes(61));
      const ran = await runBackups(h.deps, now);
      assert.ok(ran.includes(due.id), `round ${i}: ${ran}`);
      assert.ok(!ran.includes(stopped.id), `round ${i}: the stopped project`);
      rounds.push(now);
    }
    const kept = await backupStatus(h, user, due.id);
    assert.deepEqual(
      kept.backups.map((b) => b.key),
      rounds.slice(-3).map((t) => keyAt(due.id, t)),
      "only the newest three, oldest first",
    );
    assert.equal(kept.last_backup_at, rounds.at(-1)!.toISOString());
    assert.equal(kept.last_backup_size_bytes, kept.backups.at(-1)!.size);
    const dir = await Array.fromAsync(
      Deno.readDir(`${h.dataDir}/backups/projects/${due.id}/backups`),
    );
    assert.equal(dir.length, 3, dir.map((e) => e.name).join());
    const newest = await filesInBackup(h, kept.backups.at(-1)!.key);
    assert.equal(newest.get("agent/notes/backup-me.txt"), "version 5");
    const oldestKept = await filesInBackup(h, kept.backups[0].key);
    assert.equal(oldestKept.get("agent/notes/backup-me.txt"), "version 3");
    // `young` came due in the later rounds and was backed up like any other.
    assert.ok((await backupStatus(h, user, young.id)).backups.length > 0);
    assert.deepEqual(await backupStatus(h, user, stopped.id), stoppedBefore);

    for (const p of [due, young, stopped]) {
      const del = await call(h, user, "DELETE", `/projects/${p.id}`);
      assert.equal(del.status, 200, JSON.stringify(del.body));
      const gone = await Deno.stat(`${h.dataDir}/backups/projects/${p.id}`).then(
        () => false,
        () => true,
      );
      assert.ok(gone, "the project's backups go with it");
      assert.equal(await engine.inspectContainer(`pomodex-${p.id}`), null);
      assert.equal(await workspaceOnDisk(h.dataDir, p.id), false);
    }
    assert.deepEqual(await engine.listImages(`localhost/pomodex-snapshot-${stopped.id}`), []);
  },
);

engineTest(
  "two instances running the backup job at once back each due project up once",
  async () => {
    await using h = await createTestApp();
    using cleanup = new DisposableStack();
    // A second instance: its own services over the same database and data directory.
    const other = await createServices(h.config, h.sql, silentLogger);
    cleanup.defer(() => other.engine.close());
    using engine = await requireEngine();
    const user = await signUp(h);
    const projects = [];
    for (let i = 0; i < 3; i++) projects.push(await createRunning(h, user, `race-${i}`));
    const ids = projects.map((p) => p.id).sort();
    for (const p of projects) await age(h, p.id, minutes(180));

    const base = Date.now();
    for (let round = 0; round < 3; round++) {
      // Each round is an interval later, so every project is due again. The two instances'
      // clocks differ by a millisecond, so a double backup would leave two objects.
      const t = base + round * minutes(61);
      const [a, b] = await Promise.all([
        runBackups(h.deps, new Date(t)),
        runBackups(other, new Date(t + 1)),
      ]);
      assert.deepEqual([...a, ...b].sort(), ids, `round ${round}: a=${a} b=${b}`);
      for (const p of projects) {
        const status = await backupStatus(h, user, p.id);
        assert.equal(status.backups.length, round + 1, `round ${round}: ${p.id}`);
      }
    }

    for (const p of projects) {
      const status = await backupStatus(h, user, p.id);
      // One object per round, taken by one instance or the other.
      for (let round = 0; round < 3; round++) {
        const t = base + round * minutes(61);
        const mine = status.backups.filter((b) =>
          b.key === keyAt(p.id, new Date(t)) || b.key === keyAt(p.id, new Date(t + 1))
        );
        assert.equal(mine.length, 1, `round ${round}: ${status.backups.map((b) => b.key)}`);
      }
      const del = await call(h, user, "DELETE", `/projects/${p.id}`);
      assert.equal(del.status, 200, JSON.stringify(del.body));
      assert.equal(await engine.inspectContainer(`pomodex-${p.id}`), null);
      assert.equal(await workspaceOnDisk(h.dataDir, p.id), false);
    }
  },
);

// A backup taken at a stop counts like one the job took: otherwise stop, start and the next
// run would back the same workspace up again, pushing an older backup out of BACKUP_KEEP.
engineTest("a project backed up at its stop seconds ago is not due after a restart", async () => {
  await using h = await createTestApp();
  const user = await signUp(h);
  const project = await createRunning(h, user, "stop-start");
  // Made hours ago; the job last backed it up 61 minutes ago (interval 60).
  await age(h, project.id, minutes(180), minutes(61));
  const stop = await call(h, user, "POST", `/projects/${project.id}/stop`);
  assert.equal(stop.status, 200, JSON.stringify(stop.body));
  const start = await call(h, user, "POST", `/projects/${project.id}/start`);
  assert.equal(start.status, 200, JSON.stringify(start.body));
  const before = await backupStatus(h, user, project.id);
  assert.equal(before.backups.length, 1, "the backup taken at stop");
  assert.ok(Date.now() - Date.parse(before.last_backup_at!) < minutes(1));

  const ran = await runBackups(h.deps);
  const after = await backupStatus(h, user, project.id);
  const del = await call(h, user, "DELETE", `/projects/${project.id}`);
  assert.equal(del.status, 200, JSON.stringify(del.body));
  assert.deepEqual(ran, [], "last backed up seconds ago: not due");
  assert.equal(after.backups.length, 1);
});
