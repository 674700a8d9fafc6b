// /internal/* (the terminal proxy's side of the API) and POST /projects/{id}/terminal-ticket.
// Project rows are inserted directly: these routes read the database only, so no container
// is needed here (tests/terminal_test.ts runs the whole path against the real engine).
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { issueTerminalTicket, redeemTerminalTicket } from "@/terminal/tickets.ts";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { createNetns } from "./helpers/netns.ts";
import { insertProject } from "./helpers/projects.ts";
import { signUp, type TestUser } from "./helpers/users.ts";

/** A project with a container id, last active an hour ago. */
const idleProject = (h: TestApp, userId: string, status = "running") =>
  insertProject(h.sql, userId, {
    status,
    sshPublicKey: "ssh-ed25519 AAAAtest",
    containerId: "c0ffee",
    lastActiveAt: h.sql`now() - interval '1 hour'`,
    lastActivitySource: "created",
  });

const validate = (h: TestApp, body: unknown, init: { ip?: string; headers?: HeadersInit } = {}) =>
  h.request("/internal/validate", { method: "POST", json: body, ...init });

const ticketFor = async (h: TestApp, user: TestUser, projectId: string) => {
  const res = await h.request(`/projects/${projectId}/terminal-ticket`, {
    method: "POST",
    headers: user.auth,
  });
  assert.equal(res.status, 200, await res.clone().text());
  return await res.json() as { ticket: string; expires_in: number; terminal_url: string };
};

Deno.test("internal API and terminal tickets", async (t) => {
  await using h = await createTestApp({
    RATE_LIMIT_TERMINAL_TICKETS_PER_MINUTE: "8",
    TERMINAL_PUBLIC_URL: "wss://term.example.test",
  });
  const alice = await signUp(h);
  const bob = await signUp(h);
  const project = await idleProject(h, alice.userId);

  await t.step(
    "validate: an owner's access token → user, container and status; stamps",
    async () => {
      const res = await validate(h, { token: alice.accessToken, project_id: project });
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.user_id, alice.userId);
      assert.equal(body.container_id, "c0ffee");
      assert.equal(body.status, "running");
      const [row] = await h.sql<
        { lastConnectionAt: Date | null; lastActiveAt: Date; lastActivitySource: string }[]
      >`SELECT last_connection_at, last_active_at, last_activity_source FROM projects
      WHERE id = ${project}`;
      assert.ok(row.lastConnectionAt && Date.now() - row.lastConnectionAt.getTime() < 60_000);
      assert.ok(Date.now() - row.lastActiveAt.getTime() < 60_000);
      assert.equal(row.lastActivitySource, "terminal");
    },
  );

  await t.step("validate: every refusal is the same 401", async () => {
    const bobsProject = await idleProject(h, bob.userId);
    const cases = [
      { token: alice.accessToken, project_id: bobsProject }, // not the owner
      { token: alice.accessToken, project_id: crypto.randomUUID() }, // no such project
      { token: alice.accessToken, project_id: "not-a-uuid" },
      { token: "garbage", project_id: project },
      { token: alice.accessToken.slice(0, -4) + "AAAA", project_id: project }, // bad signature
      { token: "tkt_" + "A".repeat(43), project_id: project }, // unknown ticket
      { token: "", project_id: project },
    ];
    const bodies = new Set<string>();
    for (const c of cases) {
      const res = await validate(h, c);
      assert.equal(res.status, 401, JSON.stringify(c));
      const body = await res.json();
      bodies.add(JSON.stringify({ detail: body.detail, code: body.code }));
    }
    assert.equal(bodies.size, 1, [...bodies].join(" | "));
    assert.equal(JSON.parse([...bodies][0]).code, "unauthorized");
  });

  await t.step("ticket: single use, hashed at rest, bound to its project", async () => {
    const other = await idleProject(h, alice.userId);
    const got = await ticketFor(h, alice, project);
    assert.match(got.ticket, /^tkt_[A-Za-z0-9_-]{43}$/);
    assert.equal(got.expires_in, 60);
    assert.equal(got.terminal_url, `wss://term.example.test/terminal/${project}`);

    const stored = await h.sql<{ tokenHash: string }[]>`
      SELECT token_hash FROM terminal_tickets WHERE project_id = ${project}`;
    assert.equal(stored.length, 1);
    assert.equal(stored[0].tokenHash, await sha256Hex(got.ticket));
    const dump = JSON.stringify(await h.sql`SELECT * FROM terminal_tickets`);
    assert.ok(!dump.includes(got.ticket.slice(4)), "the ticket itself is never stored");

    // Another project's id: refused, and the ticket is not spent by the attempt.
    assert.equal((await validate(h, { token: got.ticket, project_id: other })).status, 401);
    const ok = await validate(h, { token: got.ticket, project_id: project });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).user_id, alice.userId);
    assert.equal((await validate(h, { token: got.ticket, project_id: project })).status, 401);
  });

  await t.step("ticket: racing redemptions, exactly one wins", async () => {
    const { ticket } = await issueTerminalTicket(h.sql, {
      userId: alice.userId,
      projectId: project,
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => redeemTerminalTicket(h.sql, ticket, project)),
    );
    assert.equal(results.filter((r) => r?.userId === alice.userId).length, 1);
  });

  await t.step(
    "ticket: expired, or its session logged out, or its user disabled → 401",
    async () => {
      const expired = await issueTerminalTicket(h.sql, {
        userId: alice.userId,
        projectId: project,
        ttlSeconds: 60,
      });
      await h.sql`UPDATE terminal_tickets SET expires_at = now() - interval '1 second'
      WHERE token_hash = ${await sha256Hex(expired.ticket)}`;
      assert.equal(
        (await validate(h, { token: expired.ticket, project_id: project })).status,
        401,
      );

      const carol = await signUp(h);
      const carols = await idleProject(h, carol.userId);
      const beforeLogout = await ticketFor(h, carol, carols);
      const out = await h.request("/auth/logout", {
        method: "POST",
        json: { refresh_token: carol.refreshToken },
      });
      assert.equal(out.status, 204);
      assert.equal(
        (await validate(h, { token: beforeLogout.ticket, project_id: carols })).status,
        401,
      );
      assert.equal(
        (await validate(h, { token: carol.accessToken, project_id: carols })).status,
        401,
      );

      const dave = await signUp(h);
      const daves = await idleProject(h, dave.userId);
      const beforeDisable = await ticketFor(h, dave, daves);
      await h.sql`UPDATE users SET disabled_at = now() WHERE id = ${dave.userId}`;
      assert.equal(
        (await validate(h, { token: beforeDisable.ticket, project_id: daves })).status,
        401,
      );
    },
  );

  await t.step("terminal-ticket: 404 for another's project, 409 when not running", async () => {
    const bobsProject = await idleProject(h, bob.userId);
    const res = await h.request(`/projects/${bobsProject}/terminal-ticket`, {
      method: "POST",
      headers: alice.auth,
    });
    assert.equal(res.status, 404);
    assert.equal((await res.json()).code, "not_found");
    const stopped = await idleProject(h, alice.userId, "stopped");
    const res2 = await h.request(`/projects/${stopped}/terminal-ticket`, {
      method: "POST",
      headers: alice.auth,
    });
    assert.equal(res2.status, 409);
    assert.equal((await res2.json()).code, "invalid_state");
    const anon = await h.request(`/projects/${project}/terminal-ticket`, { method: "POST" });
    assert.equal(anon.status, 401);
  });

  await t.step("terminal-ticket: rate limited per user", async () => {
    const erin = await signUp(h);
    const erins = await idleProject(h, erin.userId);
    let limited: Response | null = null;
    for (let i = 0; i < 12 && !limited; i++) {
      const res = await h.request(`/projects/${erins}/terminal-ticket`, {
        method: "POST",
        headers: erin.auth,
      });
      if (res.status === 429) limited = res;
      else assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.ok(limited, "no 429 within 12 tickets at 8 a minute");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    // Per user: another user is not affected.
    await ticketFor(h, alice, project);
  });

  await t.step(
    "activity: stamps a running project; 404 when stopped or not the user's",
    async () => {
      await h.sql`UPDATE projects SET last_active_at = now() - interval '1 hour',
      last_activity_source = 'created' WHERE id = ${project}`;
      const res = await h.request("/internal/activity", {
        method: "POST",
        json: { project_id: project, user_id: alice.userId, source: "terminal" },
      });
      assert.equal(res.status, 204);
      const [row] = await h.sql<{ lastActiveAt: Date; lastActivitySource: string }[]>`
      SELECT last_active_at, last_activity_source FROM projects WHERE id = ${project}`;
      assert.ok(Date.now() - row.lastActiveAt.getTime() < 60_000);
      assert.equal(row.lastActivitySource, "terminal");

      const wrongUser = await h.request("/internal/activity", {
        method: "POST",
        json: { project_id: project, user_id: bob.userId },
      });
      assert.equal(wrongUser.status, 404);
      const stopped = await idleProject(h, alice.userId, "stopped");
      const res2 = await h.request("/internal/activity", {
        method: "POST",
        json: { project_id: stopped },
      });
      assert.equal(res2.status, 404);
    },
  );

  await t.step("acl: the default egress policy, 404 for no project", async () => {
    const res = await h.request(`/internal/acl/${project}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      project_id: project,
      egress: "allow-all",
      policy: "open",
      allowed_hosts: [],
    });
    assert.equal((await h.request(`/internal/acl/${crypto.randomUUID()}`)).status, 404);
    assert.equal((await h.request("/internal/acl/nope")).status, 404);
  });

  await t.step("in-process: outsiders and forwarded requests get 404 on every path", async () => {
    const body = { token: alice.accessToken, project_id: project };
    const attempts: [string, RequestInit & { json?: unknown; ip?: string }][] = [
      ["/internal/validate", { method: "POST", json: body, ip: "10.1.2.3" }],
      ["/internal/validate", { method: "POST", json: body, ip: "192.168.0.9" }],
      ["/internal/validate", {
        method: "POST",
        json: body,
        headers: { "X-Forwarded-For": "1.2.3.4" },
      }],
      ["/internal/validate", { method: "POST", json: body, headers: { "X-Real-IP": "1.2.3.4" } }],
      ["/internal/validate", {
        method: "POST",
        json: body,
        headers: { Forwarded: "for=1.2.3.4" },
      }],
      ["/internal/validate", {
        method: "POST",
        json: body,
        headers: { "X-Forwarded-For": "127.0.0.1" },
      }],
      ["/internal/validate", { method: "GET", ip: "10.1.2.3" }], // not 405
      ["/internal/validate", { method: "POST", body: "x", ip: "10.1.2.3" }], // not 415
      ["/internal/acl/" + project, { ip: "10.1.2.3" }],
      ["/internal/activity", { method: "POST", json: { project_id: project }, ip: "10.1.2.3" }],
      ["/internal/does-not-exist", { ip: "10.1.2.3" }],
      ["/internal", { ip: "10.1.2.3" }],
      ["/internal/", { method: "OPTIONS", ip: "10.1.2.3" }],
    ];
    for (const [path, init] of attempts) {
      const res = await h.request(path, init);
      assert.equal(res.status, 404, `${init.method ?? "GET"} ${path} ${JSON.stringify(init)}`);
      assert.equal((await res.json()).code, "not_found");
    }
    // An /internal path that does not exist is a 404 for loopback too.
    assert.equal((await h.request("/internal/does-not-exist")).status, 404);
  });

  await t.step("real sockets: non-loopback peer → 404, loopback → the route", async () => {
    await using ns = await createNetns();
    await using cleanup = new AsyncDisposableStack();
    const servers: Deno.HttpServer[] = [];
    cleanup.defer(async () => {
      for (const s of servers) await s.shutdown();
    });
    const serve = (hostname: string) => {
      const s = Deno.serve(
        { hostname, port: 0, onListen: () => {} },
        (req, info) => h.app.fetch(req, { remoteAddr: info.remoteAddr }),
      );
      servers.push(s);
      return s.addr.port;
    };
    const outside = serve(ns.hostAddress);
    const local = serve("127.0.0.1");
    const curl = (base: string, path: string, extra: string[] = []) => [
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "--max-time",
      "10",
      ...extra,
      `${base}${path}`,
    ];
    const post = [
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify({ token: alice.accessToken, project_id: project }),
    ];
    const remote = `http://${ns.hostAddress}:${outside}`;
    const codeFromNs = async (path: string, extra: string[] = []) => {
      const r = await ns.run(curl(remote, path, extra));
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    // The namespace does reach the app: a public route answers.
    assert.equal(await codeFromNs("/health"), "200");
    assert.equal(await codeFromNs("/internal/validate", post), "404");
    assert.equal(await codeFromNs("/internal/does-not-exist"), "404");
    assert.equal(await codeFromNs(`/internal/acl/${project}`), "404");

    const fromHost = async (path: string, extra: string[] = []) => {
      const out = await new Deno.Command("curl", {
        args: curl(`http://127.0.0.1:${local}`, path, extra).slice(1),
        stdout: "piped",
      }).output();
      return new TextDecoder().decode(out.stdout);
    };
    assert.equal(await fromHost("/internal/validate", post), "200");
    assert.equal(
      await fromHost("/internal/validate", [...post, "-H", "X-Forwarded-For: 10.9.9.9"]),
      "404",
    );
    assert.equal(
      await fromHost("/internal/validate", [...post, "-H", "X-Real-IP: 1.1.1.1"]),
      "404",
    );
  });

  await t.step("the internal routes are left out of the OpenAPI document", async () => {
    const doc = await (await h.request("/openapi.json")).json();
    assert.equal(doc.paths["/internal/validate"], undefined);
    assert.ok(doc.paths["/projects/{id}/terminal-ticket"]);
  });
});

Deno.test("an app without a remote address (no socket peer) refuses /internal", async () => {
  await using h = await createTestApp();
  const app: ReturnType<typeof createApp> = h.app;
  const res = await app.request("/internal/acl/" + crypto.randomUUID());
  assert.equal(res.status, 404);
});
