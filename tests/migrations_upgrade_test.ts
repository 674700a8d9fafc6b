// Migrations as an upgrade: an installation that ran at 007 (users, logins, projects in it)
// takes 008 and 009 at the next start, keeps every row, and the app works on them. The other
// migration tests apply everything to empty databases, where a NOT NULL column without a
// default, or a constraint the old rows break, passes unnoticed.
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { createPasswordHasher } from "@/auth/passwords.ts";
import { hashToken, newRefreshToken } from "@/auth/tokens.ts";
import { createSecretBox, loadMasterKey } from "@/infra/crypto/secrets.ts";
import { migrate, readMigrations } from "@/infra/db/migrate.ts";
import { unmountWorkspace } from "@/infra/host/workspace.ts";
import { silentLogger } from "@/core/log.ts";
import { removeProjectResources } from "@/projects/lifecycle/delete.ts";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { sshKeyContext } from "@/projects/view.ts";
import { createServices } from "@/services.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { requireEngine } from "./helpers/engine.ts";
import { testConfig } from "./helpers/app.ts";
import { engineTest } from "./helpers/projects.ts";
import { sshRun } from "./helpers/ssh.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

const PASSWORD = "an old but good password";

engineTest(
  "migrations: an install at 007 with users, sessions and projects upgrades; its rows and the app keep working",
  async () => {
    await using cleanup = new AsyncDisposableStack();
    const dataDir = await Deno.makeTempDir({ prefix: "pomodex-test-upgrade-" });
    cleanup.defer(() => Deno.remove(dataDir, { recursive: true }));
    const db = cleanup.use(await createTestDatabase({ migrate: false }));
    const engine = cleanup.use(await requireEngine());
    // --- the installation as it was at 007
    const all = await readMigrations();
    const old = all.filter((m) => m.version < "008");
    assert.deepEqual(
      await migrate(db.sql, old),
      [
        "001_foundation",
        "002_auth",
        "003_terminal",
        "004_snapshots",
        "005_activity",
        "006_installation",
        "007_instances",
      ],
    );
    const [{ id: installationId }] = await db.sql<{ id: string }[]>`
        SELECT id FROM installation`;
    // Rows written the way that schema had them (its app sealed keys with the master key
    // in DATA_DIR, hashed passwords with argon2id and refresh tokens with SHA-256).
    const secrets = await createSecretBox(await loadMasterKey(undefined, dataDir));
    const passwordHash = await (await createPasswordHasher()).hash(PASSWORD);
    const [user] = await db.sql<{ id: string }[]>`
        INSERT INTO users (email, password_hash, role, project_quota, created_at)
        VALUES ('Old.User@Example.com', ${passwordHash}, 'user', 4, now() - interval '90 days')
        RETURNING id`;
    const [session] = await db.sql<{ id: string }[]>`
        INSERT INTO sessions (user_id, kind, ip, user_agent, expires_at)
        VALUES (${user.id}, 'api', '198.51.100.1', 'curl/7.88', now() + interval '20 days')
        RETURNING id`;
    const refreshToken = newRefreshToken();
    await db.sql`
        INSERT INTO refresh_tokens (session_id, token_hash, expires_at)
        VALUES (${session.id}, ${await hashToken(refreshToken)}, now() + interval '20 days')`;
    const stoppedId = crypto.randomUUID(), brokenId = crypto.randomUUID();
    const keys = await generateSshKeyPair(`pomodex-${stoppedId}`);
    const sealedKey = await secrets.seal(keys.privateKey, sshKeyContext(stoppedId));
    await db.sql`
        INSERT INTO projects (id, user_id, name, status, status_changed_at, container_name,
          volume_name, ssh_public_key, ssh_private_key_encrypted, gcs_prefix,
          idle_timeout_minutes, last_active_at, last_activity_source, created_at,
          backup_attempted_at)
        VALUES
          (${stoppedId}, ${user.id}, 'from before', 'stopped', now() - interval '3 days',
           ${`pomodex-${stoppedId}`}, ${`pomodex-vol-${stoppedId}`}, ${keys.publicKey},
           ${sealedKey}, ${`projects/${stoppedId}/`}, 45, now() - interval '3 days', 'ssh',
           now() - interval '60 days', now() - interval '3 days'),
          (${brokenId}, ${user.id}, 'broken before', 'error', now() - interval '1 day',
           NULL, NULL, ${keys.publicKey}, NULL, ${`projects/${brokenId}/`}, NULL,
           now() - interval '1 day', 'api', now() - interval '30 days', NULL)`;
    await db.sql`
        UPDATE projects SET status_reason = 'snapshot failed: registry down'
        WHERE id = ${brokenId}`;
    await db.sql`
        INSERT INTO audit_log (event, user_id, project_id, ip, details)
        VALUES ('project.create', ${user.id}, ${stoppedId}, '198.51.100.1', '{"name":"x"}')`;
    const before = await db.sql`SELECT * FROM projects ORDER BY id`;

    // --- the upgrade: exactly the rest, over those rows
    assert.deepEqual(await migrate(db.sql), [
      "008_isolation",
      "009_invites",
      "010_auth_changes",
      "011_rate_limits_unlogged",
    ]);
    assert.deepEqual(await migrate(db.sql), [], "and nothing twice");
    const after = await db.sql`SELECT * FROM projects ORDER BY id`;
    assert.equal(after.length, 2);
    for (const [i, row] of after.entries()) {
      for (const [column, value] of Object.entries(before[i])) {
        assert.deepEqual(row[column], value, `projects.${column} of ${row.id} kept`);
      }
      // The new columns, as the code reads them for a project that predates them.
      assert.equal(row.sandboxSlot, null);
      assert.equal(row.egressPolicy, null);
      assert.deepEqual(row.egressAllowlist, []);
      assert.equal(row.workspaceUsedBytes, null);
    }
    const [kept] = await db.sql`
        SELECT u.email, u.password_hash, u.project_quota, s.revoked_at,
          (SELECT count(*)::int FROM refresh_tokens WHERE session_id = s.id) AS tokens,
          (SELECT count(*)::int FROM audit_log) AS audit
        FROM users u JOIN sessions s ON s.user_id = u.id`;
    assert.deepEqual(kept, {
      email: "Old.User@Example.com",
      passwordHash,
      projectQuota: 4,
      revokedAt: null,
      tokens: 1,
      audit: 1,
    });
    assert.deepEqual([...await db.sql`SELECT id FROM installation`], [{ id: installationId }]);

    // --- the app on the upgraded database
    const config = testConfig(dataDir, db.url);
    const deps = await createServices(config, db.sql, silentLogger);
    cleanup.defer(async () => {
      const rows = await db.sql<{ id: string; gcsPrefix: string }[]>`
        SELECT id, gcs_prefix FROM projects`.catch(() => []);
      for (const row of rows) {
        await unmountWorkspace(deps.isolation.workspaces, row.id).catch(() => {});
        await removeProjectResources(deps, row).catch(() => {});
      }
      deps.engine.close();
    });
    assert.equal(deps.installationId, installationId, "the same installation");
    const app = createApp(deps);
    const request = async (method: string, path: string, json?: unknown, token?: string) => {
      const headers: Record<string, string> = {};
      if (json !== undefined) headers["content-type"] = "application/json";
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await app.fetch(
        new Request(`http://localhost${path}`, {
          method,
          headers,
          body: json === undefined ? undefined : JSON.stringify(json),
        }),
        { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
      );
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

    // The old session's refresh token still works, and so does the old password.
    const refreshed = await request("POST", "/auth/refresh", { refresh_token: refreshToken });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const login = await request("POST", "/auth/login", {
      email: "old.user@example.com",
      password: PASSWORD,
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const token = login.body.access_token as string;
    const me = await request("GET", "/auth/me", undefined, refreshed.body.access_token);
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.equal(me.body.id, user.id);

    const list = await request("GET", "/projects", undefined, token);
    assert.equal(list.status, 200);
    const items = list.body;
    assert.deepEqual(
      items.map((p: { id: string; status: string }) => [p.id, p.status]).sort(),
      [[brokenId, "error"], [stoppedId, "stopped"]].sort(),
    );
    const shown = await request("GET", `/projects/${stoppedId}`, undefined, token);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.idle_timeout_minutes, 45);
    assert.equal(shown.body.egress_policy, config.egress.defaultPolicy);
    assert.equal(shown.body.ssh_private_key, keys.privateKey, "the sealed key opens");
    const broken = await request("GET", `/projects/${brokenId}`, undefined, token);
    assert.equal(broken.body.status_reason, "snapshot failed: registry down");
    const egress = await request("GET", `/projects/${stoppedId}/egress`, undefined, token);
    assert.equal(egress.status, 200, JSON.stringify(egress.body));

    // A project from before the isolation work starts: it gets a slot, a network and a
    // workspace disk, and SSH takes its old key.
    const started = await request("POST", `/projects/${stoppedId}/start`, undefined, token);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.equal(started.body.status, "running");
    const [{ sandboxSlot }] = await db.sql<{ sandboxSlot: number | null }[]>`
        SELECT sandbox_slot FROM projects WHERE id = ${stoppedId}`;
    assert.equal(typeof sandboxSlot, "number");
    assert.ok(await workspaceOnDisk(dataDir, stoppedId));
    const ssh = await sshRun(started.body, keys.privateKey, "echo upgraded-$((40+2))");
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), "upgraded-42");

    for (const id of [stoppedId, brokenId]) {
      const del = await request("DELETE", `/projects/${id}`, undefined, token);
      assert.equal(del.status, 200, JSON.stringify(del.body));
    }
    assert.equal(await engine.inspectContainer(`pomodex-${stoppedId}`), null);
    assert.equal(await engine.inspectNetwork(`pomodex-net-${stoppedId}`), null);
    assert.equal(await workspaceOnDisk(dataDir, stoppedId), false);
  },
);
