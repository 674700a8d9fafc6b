import assert from "node:assert/strict";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine, SKIP_ENGINE_TESTS } from "./helpers/engine.ts";
import { testRegistry } from "./helpers/env.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";
import { type GcpFake, startGcpFake } from "./fakes/gcp_fake.ts";
import { type AuthRegistryProxy, startAuthRegistryProxy } from "./fakes/registry_auth_proxy.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

// The whole project lifecycle in Google Cloud mode: the production code paths (IAM REST,
// @google-cloud/storage, registry auth with an OAuth token) against a local fake of
// Google's documented APIs, with a real engine and the local registry standing in for
// Artifact Registry (it is an OCI registry too), behind a proxy that, like Artifact Registry,
// accepts only `oauth2accesstoken` with an access token the fake issued.
const GCP_PROJECT = "pomodex-test-proj";
const BUCKET = "pomodex-backups";
/** Fixed: Podman must list it as an insecure registry (scripts/setup-engine.sh does). */
const AUTH_REGISTRY_PORT = 5002;

Deno.test({
  name:
    "Google Cloud mode: identity, GCS backups and Artifact Registry snapshots, all removed on delete",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using cloud = await cloudModeApp({}, { registry: true });
    const { fake, h } = cloud;
    const registry = cloud.registry!;
    // Only to fail loudly without an engine: the app has a client of its own.
    using _engine = await requireEngine();
    const user = await signUp(h);
    const created = await h.request("/projects", {
      method: "POST",
      headers: user.auth,
      json: { name: "cloud" },
    });
    assert.equal(created.status, 201, await created.clone().text());
    const project = await created.json();

    // A service account of its own, bound to its prefix only.
    const [row] = await h
      .sql`SELECT gcp_sa_email, gcp_sa_key_encrypted FROM projects WHERE id = ${project.id}`;
    assert.match(
      row.gcpSaEmail,
      new RegExp(`^pdx-[0-9a-f]{24}@${GCP_PROJECT}\\.iam\\.gserviceaccount\\.com$`),
    );
    assert.match(row.gcpSaKeyEncrypted, /^v1\./, "the key is sealed at rest");
    assert.ok(!row.gcpSaKeyEncrypted.includes("PRIVATE KEY"));
    const policy = fake.state.policies.get(BUCKET)!;
    const binding = policy.bindings.find((b) =>
      b.members.includes(`serviceAccount:${row.gcpSaEmail}`)
    );
    assert.equal(
      binding?.condition?.expression,
      `resource.name.startsWith("projects/_/buckets/${BUCKET}/objects/projects/${project.id}/")`,
    );

    // The sandbox holds its own key, for Google's client libraries, and nobody else's.
    const key = await sshRun(
      project,
      project.ssh_private_key,
      'bash -lc \'echo "$GOOGLE_APPLICATION_CREDENTIALS $POMODEX_GCS_PREFIX"; stat -c "%U %a" "$GOOGLE_APPLICATION_CREDENTIALS"; cat "$GOOGLE_APPLICATION_CREDENTIALS"\'',
    );
    assert.equal(key.code, 0, key.stderr);
    const [where, owner, ...json] = key.stdout.split("\n");
    assert.equal(where, `/etc/pomodex/gcp-key.json projects/${project.id}/`);
    assert.equal(owner, "agent 400");
    assert.equal(JSON.parse(json.join("\n")).client_email, row.gcpSaEmail);

    await sshRun(project, project.ssh_private_key, "echo in-the-cloud > ~/c.txt");
    const stopped = await h.request(`/projects/${project.id}/stop`, {
      method: "POST",
      headers: user.auth,
    });
    assert.equal(stopped.status, 200, await stopped.clone().text());
    const status =
      await (await h.request(`/projects/${project.id}/backup-status`, { headers: user.auth }))
        .json();
    const repo = `${GCP_PROJECT}/pomodex-snapshots/pomodex-${project.id}`;
    assert.ok(status.snapshot_image.startsWith(`${registry.address}/${repo}:s`));
    assert.equal(status.backups.length, 1);
    const objects = [...fake.state.buckets.get(BUCKET)!.keys()];
    assert.deepEqual(objects.map((k) => k.replace(/[^/]+$/, "")), [
      `projects/${project.id}/backups/`,
    ]);
    // The snapshot push authenticated as Artifact Registry wants: the platform account's
    // OAuth token as the password of oauth2accesstoken. Without one the registry refuses.
    const pushed = registry.accepted.filter((r) =>
      r.method === "PUT" && r.path.startsWith(`/v2/${repo}/manifests/`)
    );
    assert.ok(pushed.length >= 2, "the snapshot tag and latest were pushed through the proxy");
    for (const { token } of pushed) {
      assert.equal(fake.state.tokens.get(token)?.email, fake.adminKey.client_email);
    }
    const anonymous = await fetch(`http://127.0.0.1:${AUTH_REGISTRY_PORT}/v2/${repo}/tags/list`);
    await anonymous.body?.cancel();
    assert.equal(anonymous.status, 401);
    const forged = await fetch(`http://127.0.0.1:${AUTH_REGISTRY_PORT}/v2/${repo}/tags/list`, {
      headers: { authorization: `Basic ${btoa("oauth2accesstoken:not-a-token")}` },
    });
    await forged.body?.cancel();
    assert.equal(forged.status, 401);

    const started = await h.request(`/projects/${project.id}/start`, {
      method: "POST",
      headers: user.auth,
    });
    assert.equal(started.status, 200);
    const check = await sshRun(
      await started.json(),
      project.ssh_private_key,
      "cat ~/c.txt; test -s /etc/pomodex/gcp-key.json && echo key-kept",
    );
    assert.equal(check.stdout.trim(), "in-the-cloud\nkey-kept");

    const del = await h.request(`/projects/${project.id}`, {
      method: "DELETE",
      headers: user.auth,
    });
    assert.equal(del.status, 200);
    assert.deepEqual(projectAccounts(fake), [], "the service account is gone");
    const after = fake.state.policies.get(BUCKET)!;
    assert.ok(!JSON.stringify(after.bindings).includes(row.gcpSaEmail), "and its binding");
    assert.equal(fake.state.buckets.get(BUCKET)!.size, 0, "and the backups");
    const tags = await fetch(
      `http://${testRegistry().replace("localhost", "127.0.0.1")}/v2/${repo}/tags/list`,
    );
    assert.deepEqual(tags.status === 404 ? [] : ((await tags.json()).tags ?? []), []);
  },
});

Deno.test({
  name:
    "Google Cloud mode: a failing key creation leaves no account and no container (seed T8.28: a cloud failure)",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using cloud = await cloudModeApp();
    const { fake, h } = cloud;
    using engine = await requireEngine();
    const user = await signUp(h);
    fake.failNext(/\/keys$/, 403, { method: "POST", message: "Permission denied on keys" });
    const res = await h.request("/projects", {
      method: "POST",
      headers: user.auth,
      json: { name: "x" },
    });
    assert.equal(res.status, 502);
    assert.equal((await res.json()).code, "provision_failed");
    assert.deepEqual(projectAccounts(fake), []);
    const [row] = await h.sql`SELECT id, status FROM projects`;
    assert.equal(row.status, "error");
    assert.equal(await engine.inspectContainer(`pomodex-${row.id}`), null);
    assert.equal(await workspaceOnDisk(h.dataDir, row.id), false);
  },
});

Deno.test({
  name:
    "Google Cloud mode: the engine down during a create still deletes the account (seed T8.27: an engine failure)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using cloud = await cloudModeApp({
      DOCKER_HOST: "unix:///nonexistent/pomodex-test/docker.sock",
    });
    const { fake, h } = cloud;
    const user = await signUp(h);
    const bindingsBefore = JSON.stringify(fake.state.policies.get(BUCKET)?.bindings ?? []);
    const res = await h.request("/projects", {
      method: "POST",
      headers: user.auth,
      json: { name: "engine down" },
    });
    assert.equal(res.status, 502);
    assert.equal((await res.json()).code, "provision_failed");
    assert.ok(
      fake.requests.some((r) => r.method === "POST" && r.path.endsWith("/serviceAccounts")),
      "the account was made before the engine was asked",
    );
    assert.deepEqual(projectAccounts(fake), [], "and deleted although the engine is down");
    const bindingsAfter = JSON.stringify(fake.state.policies.get(BUCKET)?.bindings ?? []);
    assert.equal(bindingsAfter, bindingsBefore, "no bucket binding left");
    const [row] = await h.sql`SELECT status, status_reason FROM projects`;
    assert.equal(row.status, "error");
  },
});

/** Service accounts besides the platform's own. */
function projectAccounts(fake: GcpFake): string[] {
  return [...fake.state.serviceAccounts.keys()].filter((e) => e !== fake.adminKey.client_email);
}

interface CloudMode extends AsyncDisposable {
  fake: GcpFake;
  h: TestApp;
  /** With `registry`: the Artifact Registry stand-in, in front of the local registry. */
  registry?: AuthRegistryProxy;
}

/**
 * The app in Google Cloud mode against a fresh fake, with the platform's key in a file (and,
 * with `registry`, an Artifact Registry that takes the fake's tokens). Disposing it closes the
 * app, the registry and the fake, then removes the key file: each after what still uses it.
 */
async function cloudModeApp(
  env: Record<string, string> = {},
  opts: { registry?: boolean } = {},
): Promise<CloudMode> {
  // What is made so far goes if a later step fails; once all is made, it is the caller's.
  await using cleanup = new AsyncDisposableStack();
  const keyDir = await Deno.makeTempDir();
  cleanup.defer(() => Deno.remove(keyDir, { recursive: true }));
  const fake = cleanup.use(await startGcpFake({ gcpProject: GCP_PROJECT, buckets: [BUCKET] }));
  await Deno.writeTextFile(`${keyDir}/key.json`, JSON.stringify(fake.adminKey));
  const registry = opts.registry
    ? startAuthRegistryProxy({
      upstream: testRegistry(),
      port: AUTH_REGISTRY_PORT,
      issuedTokens: () => fake.state.tokens.keys(),
    })
    : undefined;
  if (registry) cleanup.defer(() => registry.close());
  const h = cleanup.use(
    await createTestApp({
      GCP_PROJECT,
      GCS_BUCKET: BUCKET,
      GOOGLE_APPLICATION_CREDENTIALS: `${keyDir}/key.json`,
      GCP_IAM_ENDPOINT: fake.url,
      GCS_ENDPOINT: fake.url,
      ...(registry ? { ARTIFACT_REGISTRY_HOST: registry.address } : {}),
      ...env,
    }),
  );
  const teardown = cleanup.move();
  return { fake, h, registry, [Symbol.asyncDispose]: () => teardown.disposeAsync() };
}
