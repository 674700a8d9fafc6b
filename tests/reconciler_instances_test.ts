// Several instances run the reconciler on the same timer: work a dead instance left half-done
// must be finished by exactly one of them (two used to finish the same delete, each with its
// own audit event: reliability/instances_test.ts).
import assert from "node:assert/strict";
import { reconcile } from "@/projects/reconciler.ts";
import { createTestApp } from "./helpers/app.ts";
import { SKIP_ENGINE_TESTS } from "./helpers/engine.ts";
import { insertProject } from "./helpers/projects.ts";
import { signUp } from "./helpers/users.ts";

Deno.test({
  name: "two reconcilers at once mend each stuck project exactly once",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using h = await createTestApp();
    const user = await signUp(h);
    const other = crypto.randomUUID();
    const dead = crypto.randomUUID();
    await h.sql`INSERT INTO instances (id) VALUES (${other})`;
    await h.sql`INSERT INTO instances (id, heartbeat_at)
      VALUES (${dead}, now() - interval '1 hour')`;
    const depsB = { ...h.deps, instanceId: other };

    const ROUNDS = 5;
    const stuck: { deleting: string; creating: string }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const row = (status: string) =>
        insertProject(h.sql, user.userId, {
          name: `stuck-${status}-${i}`,
          sshPublicKey: "ssh-ed25519 AAAA",
          gcsPrefix: "x/",
          status,
          workerId: dead,
        });
      stuck.push({ deleting: await row("deleting"), creating: await row("creating") });
      await Promise.all([reconcile(h.deps), reconcile(depsB)]);
    }

    const ids = stuck.flatMap((s) => [s.deleting, s.creating]);
    const events = await h.sql<{ projectId: string; event: string; n: number }[]>`
      SELECT project_id, event, count(*)::int AS n FROM audit_log
      WHERE project_id IN ${h.sql(ids)} GROUP BY project_id, event`;
    const count = (id: string, event: string) =>
      events.find((e) => e.projectId === id && e.event === event)?.n ?? 0;
    for (const s of stuck) {
      assert.equal(count(s.deleting, "project.delete_finished"), 1, "one delete finish");
      assert.equal(count(s.creating, "project.error"), 1, "one failure");
    }
    const left = await h.sql<{ id: string; status: string }[]>`
      SELECT id, status FROM projects WHERE id IN ${h.sql(ids)}`;
    assert.deepEqual(
      left.map((r) => r.status).sort(),
      Array(ROUNDS).fill("error"),
      "deletes done, creates failed",
    );
  },
});
