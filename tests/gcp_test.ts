/**
 * infra/gcp and the GCS backup store against tests/fakes/gcp_fake.ts: the real client code
 * (google-auth-library, @google-cloud/storage, fetch to the REST shapes) with only the base
 * URLs pointed at the fake.
 */
import assert from "node:assert/strict";
import {
  artifactRegistryAuth,
  CLOUD_PLATFORM_SCOPE,
  createServiceAccountKey,
  deleteProjectServiceAccount,
  deprovisionProjectIdentity,
  type GcpApiOptions,
  type GcpCredentials,
  GcpError,
  getBucketIamPolicy,
  grantPrefixAccess,
  loadCredentials,
  parseServiceAccountKey,
  prefixConditionExpression,
  provisionProjectIdentity,
  revokePrefixAccess,
  serviceAccountIdFor,
  snapshotRepository,
} from "@/infra/gcp/mod.ts";
import { createGcsStorage, GcsBackupStore, pruneBackups } from "@/infra/storage/mod.ts";
import { type GcpFake, GOOGLE_TOKEN_AUD, startGcpFake } from "./fakes/gcp_fake.ts";

const GCP_PROJECT = "test-project";
const BUCKET = "test-bucket";

interface Ctx {
  fake: GcpFake;
  credentials: GcpCredentials;
  api: GcpApiOptions & { retryDelayMs: number };
}

async function withFake(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  await using fake = await startGcpFake({ gcpProject: GCP_PROJECT, buckets: [BUCKET] });
  // The admin key's token_uri points at the fake; nothing else is redirected.
  const credentials = await loadCredentials(fake.adminKey);
  const api = { credentials, iamBaseUrl: fake.url, storageBaseUrl: fake.url, retryDelayMs: 1 };
  await fn({ fake, credentials, api });
}

function decodeJwtPart(part: string): Record<string, unknown> {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
}

function issuedTokens(fake: GcpFake): string[] {
  return [...fake.state.tokens.keys()];
}

/** A thrown error must not carry any token the fake issued, nor key material. */
function assertNoSecrets(fake: GcpFake, err: unknown) {
  const text = `${(err as Error)?.message}\n${(err as Error)?.stack}\n${
    JSON.stringify(err, Object.getOwnPropertyNames(err ?? {}))
  }`;
  for (const token of issuedTokens(fake)) assert.ok(!text.includes(token), "token leaked");
  assert.ok(!text.includes("PRIVATE KEY"), "key leaked");
  assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(text), "JWT assertion leaked");
}

// ---------------------------------------------------------------------------------------------

Deno.test("credentials: signed JWT assertion to the key's token_uri, token cached", async () => {
  await withFake(async ({ fake, credentials }) => {
    const token = await credentials.getAccessToken();
    assert.match(token, /^ya29\.fake-/);
    assert.equal(await credentials.getAccessToken(), token, "cached until near expiry");
    const tokenCalls = fake.find("/token", "POST");
    assert.equal(tokenCalls.length, 1);
    const form = tokenCalls[0].body as Record<string, string>;
    assert.equal(form.grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    const [header, payload] = form.assertion.split(".").slice(0, 2).map((p) => decodeJwtPart(p));
    assert.equal(header.alg, "RS256");
    assert.equal(payload.iss, fake.adminKey.client_email);
    assert.equal(payload.scope, CLOUD_PLATFORM_SCOPE);
    assert.equal(payload.aud, GOOGLE_TOKEN_AUD);
    assert.equal(credentials.clientEmail, fake.adminKey.client_email);
    assert.equal(fake.state.tokens.get(token)?.email, fake.adminKey.client_email);
  });
});

Deno.test("credentials: from a key file path; bad keys fail without quoting them", async () => {
  await withFake(async ({ fake }) => {
    await using cleanup = new AsyncDisposableStack();
    const dir = await Deno.makeTempDir({ prefix: "pomodex-gcp-test-" });
    cleanup.defer(() => Deno.remove(dir, { recursive: true }));
    const path = `${dir}/sa.json`;
    await Deno.writeTextFile(path, JSON.stringify(fake.adminKey));
    const creds = await loadCredentials(path);
    assert.match(await creds.getAccessToken(), /^ya29\.fake-/);

    await assert.rejects(() => loadCredentials(`${dir}/missing.json`), (err: unknown) => {
      assert.ok(err instanceof GcpError);
      assert.equal(err.operation, "credentials.read");
      return true;
    });
    const broken =
      `{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\\nsecretstuff`;
    assert.throws(() => parseServiceAccountKey(broken), (err: unknown) => {
      assert.ok(err instanceof GcpError);
      assert.ok(!err.message.includes("secretstuff"));
      return true;
    });
    assert.throws(
      () => parseServiceAccountKey(JSON.stringify({ ...fake.adminKey, client_email: "" })),
      /client_email/,
    );
  });
});

Deno.test("credentials: a key the token endpoint rejects gives a clean GcpError", async () => {
  await withFake(async ({ fake }) => {
    // A different, valid-looking key for the admin account: signature check fails.
    await using other = await startGcpFake({ gcpProject: GCP_PROJECT });
    const creds = await loadCredentials({
      ...other.adminKey,
      client_email: fake.adminKey.client_email,
      token_uri: fake.tokenUrl,
    });
    const err = await creds.getAccessToken().then(() => null, (e) => e);
    assert.ok(err instanceof GcpError, String(err));
    assert.equal(err.operation, "oauth2.token");
    assert.equal(err.status, 400);
    assert.match(err.message, /invalid_grant/);
    assertNoSecrets(fake, err);
    assert.ok(!err.message.includes(other.adminKey.private_key.slice(40, 80)));
    assert.equal((err as { cause?: unknown }).cause, undefined, "no request config attached");
  });
});

Deno.test("credentials: the token request times out (library retries, then GcpError)", async () => {
  await withFake(async ({ fake }) => {
    // A token endpoint that takes each request and never answers: a plain listener, so that
    // the test sees each connection end when the client gives up on it.
    const stuck = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const attempts: Promise<string>[] = [];
    const untilHungUp = async (conn: Deno.Conn) => {
      const buf = new Uint8Array(16 * 1024);
      let head = "";
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      conn.close();
      return head.split("\r\n")[0]; // the request line, if one came
    };
    const accepting = (async () => {
      for await (const conn of stuck) attempts.push(untilHungUp(conn));
    })().catch(() => {});
    await using cleanup = new AsyncDisposableStack();
    cleanup.defer(async () => {
      stuck.close();
      await accepting;
    });
    const creds = await loadCredentials(fake.adminKey, {
      tokenUrl: `http://127.0.0.1:${(stuck.addr as Deno.NetAddr).port}/token`,
      timeoutMs: 100,
    });
    // Each try runs under the timeout asked for (the library's own deadline, per request).
    const transporter = creds.authClient.transporter as { defaults?: { timeout?: number } };
    assert.equal(transporter.defaults?.timeout, 100);
    const err = await creds.getAccessToken().then(() => null, (e) => e);
    assert.ok(err instanceof GcpError, String(err));
    assert.equal(err.operation, "oauth2.token");
    assert.equal(err.status, 0);
    assert.match(err.message, /timeout/);
    assertNoSecrets(fake, err);
    // Each try was cut by the timeout: the client hung up every connection it opened, and
    // the tries are bounded (gaxios retries a request that got no answer twice), rather
    // than the whole thing ending within some wall-clock budget.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const lines = await Promise.race([
      Promise.all(attempts),
      new Promise<never>((_, reject) => {
        // Not a speed limit: a connection still open after this was left open for good.
        timer = setTimeout(() => reject(new Error("a try's connection was left open")), 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} tries`);
    for (const line of lines) assert.match(line, /^(POST \/token HTTP\/1\.1)?$/);
    assert.equal(lines[0], "POST /token HTTP/1.1", "the first try reached the endpoint");
  });
});

Deno.test("serviceAccountIdFor: deterministic, IAM-valid account ids", () => {
  const id = "3F2504E0-4F89-41D3-A9C1-0800200C9A66";
  const accountId = serviceAccountIdFor(id);
  assert.equal(accountId, "pdx-3f2504e04f8941d3a9c10800");
  assert.equal(serviceAccountIdFor(id.toLowerCase()), accountId);
  for (let i = 0; i < 50; i++) {
    const a = serviceAccountIdFor(crypto.randomUUID());
    assert.match(a, /^[a-z][-a-z0-9]{4,28}[a-z0-9]$/);
    assert.ok(a.length >= 6 && a.length <= 30);
  }
  assert.throws(() => serviceAccountIdFor("../../etc"), GcpError);
  assert.throws(() => serviceAccountIdFor(""), GcpError);
});

Deno.test("provision: account with deterministic id, a key, a version-3 prefix binding", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const accountId = serviceAccountIdFor(projectId);
    const email = `${accountId}@${GCP_PROJECT}.iam.gserviceaccount.com`;

    const identity = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    });
    assert.equal(identity.email, email);
    assert.equal(identity.prefix, `projects/${projectId}/`);
    assert.equal(identity.bucket, BUCKET);

    const calls = fake.requests.filter((r) => r.path !== "/token");
    assert.deepEqual(calls.map((r) => `${r.method} ${r.path}`), [
      `POST /v1/projects/${GCP_PROJECT}/serviceAccounts`,
      `POST /v1/projects/${GCP_PROJECT}/serviceAccounts/${email}/keys`,
      `GET /storage/v1/b/${BUCKET}/iam`,
      `PUT /storage/v1/b/${BUCKET}/iam`,
    ]);
    for (const r of calls) {
      assert.match(r.headers.authorization, /^Bearer ya29\.fake-/);
      assert.equal(r.status, 200);
    }
    const create = calls[0].body as { accountId: string; serviceAccount: { displayName: string } };
    assert.equal(create.accountId, accountId);
    assert.equal(typeof create.serviceAccount.displayName, "string");
    assert.ok(create.serviceAccount.displayName.length > 0);
    assert.deepEqual(calls[1].body, {
      privateKeyType: "TYPE_GOOGLE_CREDENTIALS_FILE",
      keyAlgorithm: "KEY_ALG_RSA_2048",
    });
    assert.equal(calls[2].query.optionsRequestedPolicyVersion, "3");

    const put = calls[3].body as {
      version: number;
      etag: string;
      bindings: { role: string; members: string[]; condition?: Record<string, string> }[];
    };
    assert.equal(put.version, 3);
    assert.equal(put.etag, "CAE=", "the etag read is sent back");
    const expression =
      `resource.name.startsWith("projects/_/buckets/${BUCKET}/objects/projects/${projectId}/")`;
    assert.equal(prefixConditionExpression(BUCKET, `projects/${projectId}/`), expression);
    const ours = put.bindings.filter((b) => b.members.includes(`serviceAccount:${email}`));
    assert.equal(ours.length, 1);
    assert.equal(ours[0].role, "roles/storage.objectAdmin");
    assert.deepEqual(ours[0].members, [`serviceAccount:${email}`]);
    assert.equal(ours[0].condition?.expression, expression);
    assert.ok(ours[0].condition?.title);
    assert.equal(typeof ours[0].condition?.description, "string");
    // The bucket's existing bindings are kept.
    assert.ok(put.bindings.some((b) => b.role === "roles/storage.legacyBucketOwner"));

    // The key is a usable key file for the new account.
    const key = parseServiceAccountKey(identity.keyJson);
    assert.equal(key.client_email, email);
    assert.match(identity.keyName, new RegExp(`/serviceAccounts/${email}/keys/[0-9a-f]+$`));
    const saCreds = await loadCredentials(key);
    assert.match(await saCreds.getAccessToken(), /^ya29\.fake-/);
    assert.equal(fake.state.serviceAccounts.get(email)?.keys.size, 1);
  });
});

Deno.test("provision: the account's key reaches only its own prefix (policy evaluated)", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const identity = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    });
    const saCreds = await loadCredentials(parseServiceAccountKey(identity.keyJson));
    const storage = createGcsStorage({ authClient: saCreds.authClient, apiEndpoint: fake.url });
    const store = new GcsBackupStore({ bucket: BUCKET, storage });
    const own = `${identity.prefix}backups/1.tar.gz`;
    assert.deepEqual(await store.put(own, new Blob(["mine"]).stream()), { size: 4 });
    assert.equal(await new Response(await store.get(own)).text(), "mine");
    const err = await store.put(
      `projects/${crypto.randomUUID()}/backups/1.tar.gz`,
      new Blob(["x"]).stream(),
    )
      .then(() => null, (e) => e);
    assert.ok(err instanceof GcpError, String(err));
    assert.equal(err.status, 403);
    assertNoSecrets(fake, err);
  });
});

Deno.test("provision: a retry reuses the account (409), keeps one binding and one key", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const args = { ...api, gcpProject: GCP_PROJECT, projectId, bucket: BUCKET };
    const first = await provisionProjectIdentity(args);
    const second = await provisionProjectIdentity(args);
    assert.equal(second.email, first.email);
    assert.notEqual(second.keyName, first.keyName);

    const creates = fake.find(`/v1/projects/${GCP_PROJECT}/serviceAccounts`, "POST")
      .filter((r) => r.path.endsWith("/serviceAccounts"));
    assert.deepEqual(creates.map((r) => r.status), [200, 409]);
    assert.equal(fake.state.serviceAccounts.size, 2, "admin + one project account");

    // The first attempt's key is gone; only the one handed out now remains.
    const keys = [...fake.state.serviceAccounts.get(first.email)!.keys.values()];
    assert.deepEqual(keys.map((k) => k.name), [second.keyName]);

    // Policy unchanged by the retry: one binding, set once.
    assert.equal(fake.find(`/storage/v1/b/${BUCKET}/iam`, "PUT").length, 1);
    const policy = await getBucketIamPolicy(api, BUCKET);
    const ours = policy.bindings!.filter((b) =>
      b.members.includes(`serviceAccount:${first.email}`)
    );
    assert.equal(ours.length, 1);
    assert.equal(policy.version, 3);
  });
});

Deno.test("provision: key creation fails -> the new account is deleted, error rethrown", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const email = `${serviceAccountIdFor(projectId)}@${GCP_PROJECT}.iam.gserviceaccount.com`;
    fake.failNext(/\/keys$/, 403, { method: "POST", message: "Key creation is disabled." });
    const err = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    }).then(() => null, (e) => e);
    assert.ok(err instanceof GcpError, String(err));
    assert.equal(err.status, 403);
    assert.equal(err.operation, "iam.serviceAccounts.keys.create");
    assert.equal(err.googleMessage, "Key creation is disabled.");
    assert.equal(err.googleStatus, "PERMISSION_DENIED");
    assertNoSecrets(fake, err);

    const deletes = fake.find(`/serviceAccounts/${email}`, "DELETE");
    assert.equal(deletes.length, 1);
    assert.equal(deletes[0].status, 200);
    assert.equal(fake.state.serviceAccounts.has(email), false);
    assert.equal(fake.find(`/storage/v1/b/${BUCKET}/iam`).length, 0, "no grant attempted");
  });
});

Deno.test("provision: the IAM grant fails -> the new account is deleted, error rethrown", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const email = `${serviceAccountIdFor(projectId)}@${GCP_PROJECT}.iam.gserviceaccount.com`;
    fake.failNext(`/storage/v1/b/${BUCKET}/iam`, 403, { method: "PUT" });
    const err = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    }).then(() => null, (e) => e);
    assert.ok(err instanceof GcpError, String(err));
    assert.equal(err.status, 403);
    assert.equal(err.operation, "storage.buckets.setIamPolicy");
    assertNoSecrets(fake, err);
    assert.equal(fake.find(`/serviceAccounts/${email}`, "DELETE").length, 1);
    assert.equal(fake.state.serviceAccounts.has(email), false);
    const policy = fake.state.policies.get(BUCKET)!;
    assert.ok(!JSON.stringify(policy).includes(email), "no binding left behind");

    // Reading the policy failing is undone the same way.
    const projectId2 = crypto.randomUUID();
    fake.failNext(`/storage/v1/b/${BUCKET}/iam`, 500, { method: "GET" });
    await assert.rejects(
      () =>
        provisionProjectIdentity({
          ...api,
          gcpProject: GCP_PROJECT,
          projectId: projectId2,
          bucket: BUCKET,
        }),
      (e: unknown) =>
        e instanceof GcpError && e.status === 500 && e.operation === "storage.buckets.getIamPolicy",
    );
    assert.equal(fake.state.serviceAccounts.size, 1, "only the admin account is left");
  });
});

Deno.test("grant: a concurrent policy write (412) is retried with the fresh etag", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    fake.failNext(`/storage/v1/b/${BUCKET}/iam`, 412, { method: "PUT", times: 2 });
    const identity = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    });
    const puts = fake.find(`/storage/v1/b/${BUCKET}/iam`, "PUT");
    assert.deepEqual(puts.map((r) => r.status), [412, 412, 200]);
    assert.equal(fake.find(`/storage/v1/b/${BUCKET}/iam`, "GET").length, 3, "re-read each time");

    // A real race: another writer changes the policy between our read and our write, so
    // the fake's etag check refuses our PUT; the retry re-reads and keeps their change.
    const email2 = identity.email;
    let raced = false;
    const racingFetch: typeof fetch = (input, init) => {
      if (!raced && init?.method === "PUT") {
        raced = true;
        const policy = fake.state.policies.get(BUCKET)!;
        policy.bindings.push({
          role: "roles/storage.objectViewer",
          members: ["user:ops@example.com"],
        });
        policy.etag = "changed-by-someone-else";
      }
      return fetch(input, init);
    };
    const before = fake.find(`/storage/v1/b/${BUCKET}/iam`, "PUT").length;
    assert.equal(
      await revokePrefixAccess({ ...api, fetch: racingFetch, bucket: BUCKET, email: email2 }),
      true,
    );
    const racePuts = fake.find(`/storage/v1/b/${BUCKET}/iam`, "PUT").slice(before);
    assert.deepEqual(racePuts.map((r) => r.status), [412, 200]);
    assert.equal((racePuts[1].body as { etag: string }).etag, "changed-by-someone-else");
    const after = JSON.stringify(fake.state.policies.get(BUCKET));
    assert.ok(!after.includes(email2));
    assert.ok(after.includes("user:ops@example.com"), "the other writer's change survives");

    // Grant is idempotent: granting twice adds one binding.
    assert.equal(
      await grantPrefixAccess({ ...api, bucket: BUCKET, email: email2, prefix: identity.prefix }),
      true,
    );
    assert.equal(
      await grantPrefixAccess({ ...api, bucket: BUCKET, email: email2, prefix: identity.prefix }),
      false,
    );
    await assert.rejects(
      () => grantPrefixAccess({ ...api, bucket: BUCKET, email: email2, prefix: "../other" }),
      GcpError,
    );
  });
});

Deno.test("deprovision: binding revoked, account deleted; already-gone is fine", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const identity = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    });
    const args = { ...api, gcpProject: GCP_PROJECT, bucket: BUCKET, email: identity.email };
    assert.deepEqual(await deprovisionProjectIdentity(args), { revoked: true, deleted: true });
    assert.equal(fake.state.serviceAccounts.has(identity.email), false);
    const policy = fake.state.policies.get(BUCKET)!;
    assert.ok(!JSON.stringify(policy).includes(identity.email));
    assert.ok(policy.bindings.some((b) => b.role === "roles/storage.legacyBucketOwner"));
    const lastPut = fake.find(`/storage/v1/b/${BUCKET}/iam`, "PUT").at(-1)!;
    assert.ok(!JSON.stringify(lastPut.body).includes(identity.email));

    // Again: nothing to revoke, account 404 -> tolerated.
    assert.deepEqual(await deprovisionProjectIdentity(args), { revoked: false, deleted: false });
    assert.equal(fake.find(`/serviceAccounts/${identity.email}`, "DELETE").at(-1)!.status, 404);
    // By project id alone (derived email).
    assert.deepEqual(
      await deprovisionProjectIdentity({
        ...api,
        gcpProject: GCP_PROJECT,
        bucket: BUCKET,
        projectId,
      }),
      { revoked: false, deleted: false },
    );
  });
});

Deno.test("deprovision: account deleted first leaves a deleted: member, which is removed", async () => {
  await withFake(async ({ fake, api }) => {
    const projectId = crypto.randomUUID();
    const identity = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId,
      bucket: BUCKET,
    });
    assert.equal(await deleteProjectServiceAccount({ ...api, email: identity.email }), true);
    assert.ok(
      JSON.stringify(fake.state.policies.get(BUCKET)).includes(
        `deleted:serviceAccount:${identity.email}`,
      ),
    );
    assert.deepEqual(
      await deprovisionProjectIdentity({
        ...api,
        gcpProject: GCP_PROJECT,
        bucket: BUCKET,
        email: identity.email,
      }),
      { revoked: true, deleted: false },
    );
    assert.ok(!JSON.stringify(fake.state.policies.get(BUCKET)).includes(identity.email));
    // The wildcard project path is used when the project is not given.
    assert.ok(fake.find(`/v1/projects/-/serviceAccounts/${identity.email}`, "DELETE").length >= 1);
  });
});

Deno.test("errors: Google's message and status, no token; 401 and timeouts", async () => {
  await withFake(async ({ fake, api }) => {
    fake.failNext("/serviceAccounts", 500, { message: "Internal error encountered." });
    const err = await provisionProjectIdentity({
      ...api,
      gcpProject: GCP_PROJECT,
      projectId: crypto.randomUUID(),
      bucket: BUCKET,
    }).then(() => null, (e) => e);
    assert.ok(err instanceof GcpError);
    assert.equal(err.status, 500);
    assert.equal(err.operation, "iam.serviceAccounts.create");
    assert.equal(err.googleStatus, "INTERNAL");
    assert.match(
      err.message,
      /iam\.serviceAccounts\.create failed \(HTTP 500 INTERNAL\): Internal error encountered\./,
    );
    assertNoSecrets(fake, err);

    // A token the API does not accept: 401, and the token is not in the error.
    const bogus = "ya29.bogus-token-value-that-must-not-leak";
    const err401 = await getBucketIamPolicy({
      ...api,
      credentials: { getAccessToken: () => Promise.resolve(bogus) },
    }, BUCKET)
      .then(() => null, (e) => e);
    assert.ok(err401 instanceof GcpError);
    assert.equal(err401.status, 401);
    assert.equal(err401.googleStatus, "UNAUTHENTICATED");
    assert.ok(!err401.message.includes(bogus));
    assert.equal(fake.requests.at(-1)!.status, 401);

    // No Authorization header at all: the fake answers 401 too.
    const raw = await fetch(`${fake.url}/storage/v1/b/${BUCKET}/iam`);
    assert.equal(raw.status, 401);
    assert.equal((await raw.json()).error.status, "UNAUTHENTICATED");

    // Every call has a timeout.
    const hanging: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      });
    const errTimeout = await createServiceAccountKey({
      ...api,
      fetch: hanging,
      timeoutMs: 50,
      email: "x@test-project.iam.gserviceaccount.com",
    }).then(() => null, (e) => e);
    assert.ok(errTimeout instanceof GcpError, String(errTimeout));
    assert.equal(errTimeout.status, 0);
    assert.match(errTimeout.message, /timed out/);
  });
});

Deno.test("artifact registry: oauth2accesstoken auth and snapshot repository names", async () => {
  await withFake(async ({ credentials }) => {
    const auth = await artifactRegistryAuth(credentials, { location: "europe-west1" });
    assert.equal(auth.username, "oauth2accesstoken");
    assert.equal(auth.password, await credentials.getAccessToken());
    assert.equal(auth.serveraddress, "europe-west1-docker.pkg.dev");
    const local = await artifactRegistryAuth(credentials, {
      location: "europe-west1",
      registryHost: "127.0.0.1:5000",
    });
    assert.equal(local.serveraddress, "127.0.0.1:5000");
  });
  const projectId = "3f2504e0-4f89-41d3-a9c1-0800200c9a66";
  assert.equal(
    snapshotRepository({
      location: "us-central1",
      gcpProject: "my-proj-1",
      repository: "snapshots",
      projectId,
    }),
    `us-central1-docker.pkg.dev/my-proj-1/snapshots/pomodex-${projectId}`,
  );
  assert.throws(
    () =>
      snapshotRepository({
        location: "us/evil",
        gcpProject: "my-proj-1",
        repository: "s",
        projectId,
      }),
    GcpError,
  );
  assert.throws(
    () =>
      snapshotRepository({
        location: "us",
        gcpProject: "my-proj-1",
        repository: "snapshots",
        projectId: "A/B",
      }),
    GcpError,
  );
});

Deno.test("GcsBackupStore: put/list/get/delete/prune through @google-cloud/storage", async () => {
  await withFake(async ({ fake, credentials }) => {
    const storage = createGcsStorage({ authClient: credentials.authClient, apiEndpoint: fake.url });
    const store = new GcsBackupStore({ bucket: BUCKET, storage });
    const prefix = "projects/p1/backups/";

    const big = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
    assert.deepEqual(await store.put(`${prefix}0001.tar.gz`, new Blob([big]).stream()), {
      size: big.length,
    });
    for (const n of ["0002", "0003", "0004"]) {
      await store.put(`${prefix}${n}.tar.gz`, new Blob([`backup ${n}`]).stream());
      await new Promise((r) => setTimeout(r, 5)); // distinct timeCreated
    }
    await store.put("projects/p2/backups/0001.tar.gz", new Blob(["other"]).stream());

    const uploads = fake.find(`/upload/storage/v1/b/${BUCKET}/o`, "POST");
    assert.equal(uploads.length, 5);
    assert.equal(uploads[0].query.uploadType, "multipart");
    assert.equal(uploads[0].query.name, `${prefix}0001.tar.gz`);
    assert.match(uploads[0].headers.authorization, /^Bearer ya29\.fake-/);
    assert.equal((uploads[0].body as { contentType: string }).contentType, "application/gzip");
    assert.deepEqual(fake.state.buckets.get(BUCKET)!.get(`${prefix}0001.tar.gz`)!.data, big);

    // Listing pages through the results.
    fake.state.listPageSize = 2;
    const listed = await store.list(prefix);
    assert.deepEqual(
      listed.map((o) => o.key),
      ["0001", "0002", "0003", "0004"].map((n) => `${prefix}${n}.tar.gz`),
    );
    assert.equal(listed[0].size, big.length);
    assert.ok(listed.every((o, i) => i === 0 || o.createdAt >= listed[i - 1].createdAt));
    const lists = fake.find(`/storage/v1/b/${BUCKET}/o`, "GET").filter((r) =>
      r.path.endsWith("/o")
    );
    assert.ok(lists.length >= 2, "paginated");
    assert.ok(lists.slice(1).every((r) => r.query.pageToken));
    assert.ok(lists.every((r) => r.query.prefix === prefix));

    // Download streams the bytes back (library-validated CRC32C).
    const got = new Uint8Array(
      await new Response(await store.get(`${prefix}0001.tar.gz`)).arrayBuffer(),
    );
    assert.deepEqual(got, big);
    assert.equal(await new Response(await store.get(`${prefix}0003.tar.gz`)).text(), "backup 0003");
    assert.equal(await store.get(`${prefix}nope.tar.gz`), null);
    const media = fake.requests.filter((r) => r.query.alt === "media");
    assert.ok(media.length >= 2);
    assert.ok(media.every((r) => /^Bearer /.test(r.headers.authorization)));

    // Prune keeps the newest two.
    const pruned = await pruneBackups(store, prefix, 2);
    assert.deepEqual(pruned, [`${prefix}0001.tar.gz`, `${prefix}0002.tar.gz`]);
    assert.deepEqual((await store.list(prefix)).map((o) => o.key), [
      `${prefix}0003.tar.gz`,
      `${prefix}0004.tar.gz`,
    ]);

    await store.delete(`${prefix}0003.tar.gz`);
    await store.delete(`${prefix}0003.tar.gz`); // missing is fine
    assert.equal(await store.deletePrefix("projects/p1/"), 1);
    assert.deepEqual(await store.list("projects/p1/"), []);
    assert.equal((await store.list("projects/")).length, 1, "other project untouched");
    await assert.rejects(() => store.put("../x", new Blob(["x"]).stream()), /invalid backup key/);
  });
});

Deno.test("GcsBackupStore: API errors become GcpError without tokens", async () => {
  await withFake(async ({ fake, credentials }) => {
    const storage = createGcsStorage({ authClient: credentials.authClient, apiEndpoint: fake.url });
    const store = new GcsBackupStore({ bucket: BUCKET, storage });
    await credentials.getAccessToken();

    fake.failNext(`/upload/storage/v1/b/${BUCKET}/o`, 403, { message: "Access denied." });
    const putErr = await store.put("projects/p/backups/1.tar.gz", new Blob(["data"]).stream())
      .then(() => null, (e) => e);
    assert.ok(putErr instanceof GcpError, String(putErr));
    assert.equal(putErr.status, 403);
    assert.equal(putErr.operation, "storage.objects.insert");
    assert.match(putErr.googleMessage, /Access denied/);
    assertNoSecrets(fake, putErr);

    fake.failNext(`/storage/v1/b/${BUCKET}/o`, 403, { method: "GET" });
    const listErr = await store.list("projects/p/").then(() => null, (e) => e);
    assert.ok(listErr instanceof GcpError);
    assert.equal(listErr.status, 403);
    assertNoSecrets(fake, listErr);

    const missingBucket = new GcsBackupStore({ bucket: "no-such-bucket", storage });
    const err404 = await missingBucket.list("x/").then(() => null, (e) => e);
    assert.ok(err404 instanceof GcpError);
    assert.equal(err404.status, 404);
  });
});

Deno.test("GcsBackupStore: every call has a deadline, transfers a stall timeout", async () => {
  await withFake(async ({ credentials }) => {
    await credentials.getAccessToken();
    // A server that accepts requests and then says nothing (or stops mid-download).
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    await using cleanup = new AsyncDisposableStack();
    const stuck = cleanup.use(
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
        const url = new URL(req.url);
        seen.push(`${req.method} ${url.pathname}${url.search}`);
        if (
          req.method === "GET" && /\/o\/[^/]+$/.test(url.pathname) && !url.searchParams.has("alt")
        ) {
          const name = decodeURIComponent(url.pathname.split("/o/")[1]);
          return Response.json({ name, bucket: BUCKET, generation: "1", size: "10" });
        }
        if (url.searchParams.get("alt") === "media") {
          const body = new ReadableStream<Uint8Array>({
            async start(controller) {
              controller.enqueue(new Uint8Array(5));
              await released;
              controller.close();
            },
          });
          return new Response(body, { headers: { "content-type": "application/gzip" } });
        }
        await req.body?.cancel();
        await released;
        return Response.json({ error: { code: 404, message: "late" } }, { status: 404 });
      }),
    );
    // Before the shutdown, which waits for every request still held.
    cleanup.defer(() => release());
    const storage = createGcsStorage({
      authClient: credentials.authClient,
      apiEndpoint: `http://127.0.0.1:${stuck.addr.port}`,
    });
    const store = new GcsBackupStore({ bucket: BUCKET, storage, timeoutMs: 200 });
    const timedOut = (op: string) => (err: unknown) => {
      assert.ok(err instanceof GcpError, String(err));
      assert.equal(err.operation, op);
      assert.equal(err.status, 0);
      assert.match(err.message, /timed out|no (upload|download) progress/);
      return true;
    };
    await assert.rejects(() => store.list("projects/p/"), timedOut("storage.objects.list"));
    await assert.rejects(() => store.delete("projects/p/x"), timedOut("storage.objects.delete"));
    await assert.rejects(
      () => store.put("projects/p/x", new Blob(["payload"]).stream()),
      timedOut("storage.objects.insert"),
    );
    const download = await store.get("projects/p/x");
    assert.ok(download);
    await assert.rejects(
      () => new Response(download).arrayBuffer(),
      timedOut("storage.objects.get"),
    );
    assert.ok(seen.some((s) => s.includes("alt=media")));
  });
});
