// Egress policy as data (issue 13): the owner's API, what the proxy is told, and the rules a
// domain must follow. The network path itself is tested in egress_test.ts.
import assert from "node:assert/strict";
import { mayReach, normalizeDomain } from "@/projects/egress.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { call, insertProject } from "./helpers/projects.ts";
import { signUp, type TestUser } from "./helpers/users.ts";

const runningProject = (h: TestApp, user: TestUser, slot: number) =>
  insertProject(h.sql, user.userId, {
    status: "running",
    sshPublicKey: "ssh-ed25519 AAAA",
    gcsPrefix: "x/",
    sandboxSlot: slot,
  });

/** The proxy's question, asked as its helper asks it. */
async function decide(h: TestApp, src: string, host: string, port: number, method: string) {
  const q = new URLSearchParams({ src, host, port: String(port), method });
  const res = await h.request(`/internal/egress/decide?${q}`);
  await res.body?.cancel();
  return res.status;
}

Deno.test("egress: the owner reads and sets the policy; the proxy's answers follow it", async () => {
  await using h = await createTestApp();
  const alice = await signUp(h), bob = await signUp(h);
  const id = await runningProject(h, alice, 7); // 10.213.0.112/28: the sandbox is .114
  const sandbox = "10.213.0.114";

  const initial = await call(h, alice, "GET", `/projects/${id}/egress`);
  assert.deepEqual(initial.body, {
    policy: "open",
    allowlist: [],
    effective_policy: "open",
    default_policy: "open",
    open_allowed: true,
  });
  assert.equal(await decide(h, sandbox, "anything.example", 22, "CONNECT"), 204);

  const set = await call(h, alice, "PUT", `/projects/${id}/egress`, {
    policy: "allowlist",
    allowlist: ["Example.COM", "*.pypi.org", "bücher.de", "example.com."],
  });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual(set.body.allowlist, ["example.com", "pypi.org", "xn--bcher-kva.de"]);
  assert.equal(await decide(h, sandbox, "example.com", 443, "CONNECT"), 204);
  assert.equal(await decide(h, sandbox, "api.example.com", 80, "GET"), 204);
  assert.equal(await decide(h, sandbox, "files.pypi.org", 443, "CONNECT"), 204);
  assert.equal(await decide(h, sandbox, "notexample.com", 443, "CONNECT"), 403);
  assert.equal(await decide(h, sandbox, "example.com.evil.test", 443, "CONNECT"), 403);
  assert.equal(await decide(h, sandbox, "example.com", 22, "CONNECT"), 403, "HTTPS is 443");
  assert.equal(await decide(h, sandbox, "example.com", 8080, "GET"), 403, "HTTP is 80");
  assert.equal(await decide(h, "10.213.0.130", "example.com", 443, "CONNECT"), 403, "no one's");
  assert.equal(await decide(h, "192.0.2.9", "example.com", 443, "CONNECT"), 403, "no sandbox");

  // The seeds' /internal/acl shape follows too.
  const acl = await (await h.request(`/internal/acl/${id}`)).json();
  assert.deepEqual(acl, {
    project_id: id,
    egress: "allow-list",
    policy: "allowlist",
    allowed_hosts: ["example.com", "pypi.org", "xn--bcher-kva.de"],
  });

  // Policy alone keeps the list; none refuses everything.
  const none = await call(h, alice, "PUT", `/projects/${id}/egress`, { policy: "none" });
  assert.deepEqual(none.body.allowlist, ["example.com", "pypi.org", "xn--bcher-kva.de"]);
  assert.equal(await decide(h, sandbox, "example.com", 443, "CONNECT"), 403);

  // A stopped project's address answers nothing.
  await h.sql`UPDATE projects SET status = 'stopped', egress_policy = 'open' WHERE id = ${id}`;
  assert.equal(await decide(h, sandbox, "example.com", 443, "CONNECT"), 403);

  // Another user's project is a 404, as everywhere.
  assert.equal((await call(h, bob, "GET", `/projects/${id}/egress`)).status, 404);
  assert.equal(
    (await call(h, bob, "PUT", `/projects/${id}/egress`, { policy: "open" })).status,
    404,
  );

  // Bad input is a 422 that names the field.
  for (
    const allowlist of [["10.0.0.1"], ["example.com:443"], ["example.com/x"], ["localhost"], [7]]
  ) {
    const bad = await call(h, alice, "PUT", `/projects/${id}/egress`, {
      policy: "allowlist",
      allowlist,
    });
    assert.equal(bad.status, 422, `${JSON.stringify(allowlist)}: ${JSON.stringify(bad.body)}`);
  }
  const tooMany = Array.from({ length: 101 }, (_, i) => `d${i}.example.com`);
  assert.equal(
    (await call(h, alice, "PUT", `/projects/${id}/egress`, {
      policy: "allowlist",
      allowlist: tooMany,
    }))
      .status,
    422,
  );
});

Deno.test("egress: where the operator forbids open, it is refused and degrades to the allowlist", async () => {
  await using h = await createTestApp({
    EGRESS_ALLOW_OPEN: "false",
    EGRESS_DEFAULT_POLICY: "allowlist",
  });
  const alice = await signUp(h);
  const id = await runningProject(h, alice, 9);
  const refused = await call(h, alice, "PUT", `/projects/${id}/egress`, { policy: "open" });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.code, "egress_open_forbidden");
  // A project set to open before the operator changed their mind.
  await h.sql`UPDATE projects SET egress_policy = 'open' WHERE id = ${id}`;
  const seen = await call(h, alice, "GET", `/projects/${id}/egress`);
  assert.equal(seen.body.policy, "open");
  assert.equal(seen.body.effective_policy, "allowlist");
  assert.equal(await decide(h, "10.213.0.146", "anything.example", 443, "CONNECT"), 403);
  assert.equal((await call(h, alice, "GET", `/projects/${id}`)).body.egress_policy, "allowlist");
});

Deno.test("egress: what a domain may be, and what allowlist lets through", () => {
  assert.equal(normalizeDomain("  Sub.Example.org. ", 0), "sub.example.org");
  for (const bad of ["", "1.2.3.4", "[::1]", "a b.com", "x.com:80", "-x.com", "x..com", "com"]) {
    assert.throws(() => normalizeDomain(bad, 0), `${bad} refused`);
  }
  const list = ["example.com"];
  const at = (host: string, port: number, method: string) =>
    mayReach("allowlist", list, { host, port, method });
  assert.ok(at("example.com", 443, "CONNECT"));
  assert.ok(at("EXAMPLE.com.", 80, "GET"));
  assert.ok(!at("example.com", 80, "CONNECT"));
  assert.ok(!at("example.com", 443, "GET"));
  assert.ok(!at("xexample.com", 443, "CONNECT"));
  assert.ok(mayReach("open", [], { host: "x.y", port: 5432, method: "CONNECT" }));
  assert.ok(!mayReach("none", list, { host: "example.com", port: 443, method: "CONNECT" }));
});
