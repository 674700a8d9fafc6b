// The HTTP edge: which address is the client's behind TRUSTED_PROXIES (IPv4 CIDRs, IPv6
// addresses and ranges, IPv4 peers of a dual-stack listener), and what an unexpected error
// shows a client (a JSON 500 with a request id, nothing of the error itself).
import assert from "node:assert/strict";
import { createApp } from "@/app.ts";
import { createLogger } from "@/core/log.ts";
import { createServices } from "@/services.ts";
import { createTestApp, type TestApp, testConfig } from "./helpers/app.ts";
import { createTestDatabase } from "./helpers/db.ts";

/**
 * The address the app took for the client of one request: a failed login is audited with
 * it, found again by the request's id.
 */
async function clientIpOf(
  h: TestApp,
  peer: string,
  xff?: string,
  send: (req: Request) => Promise<Response> = (req) =>
    Promise.resolve(h.app.fetch(req, {
      remoteAddr: { transport: "tcp", hostname: peer, port: 40000 },
    })),
): Promise<string> {
  const requestId = crypto.randomUUID();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-request-id": requestId,
  };
  if (xff !== undefined) headers["x-forwarded-for"] = xff;
  const res = await send(
    new Request("http://localhost/auth/login", {
      method: "POST",
      headers,
      body: JSON.stringify({ email: `${requestId}@example.com`, password: "not the password" }),
    }),
  );
  assert.equal(res.status, 401, await res.text());
  const [row] = await h.sql<{ ip: string }[]>`
    SELECT ip FROM audit_log WHERE request_id = ${requestId} AND event = 'auth.login_failed'`;
  assert.ok(row, `no audit row for ${peer} / ${xff}`);
  return row.ip;
}

const generous = {
  RATE_LIMIT_LOGIN_PER_MINUTE: "10000",
  RATE_LIMIT_LOGIN_FAILURES_PER_15_MINUTES: "10000",
};

Deno.test("TRUSTED_PROXIES: IPv4 CIDRs believe forwarding headers only from inside them", async () => {
  await using h = await createTestApp({
    ...generous,
    TRUSTED_PROXIES: "10.0.0.0/8, 192.168.7.0/24,203.0.113.9/32, 198.18.0.1",
  });
  const client = "198.51.100.7";
  // Inside each range, at its edges: the forwarded address is the client.
  for (
    const proxy of ["10.0.0.0", "10.255.255.255", "10.1.2.3", "192.168.7.1", "192.168.7.255"]
  ) {
    assert.equal(await clientIpOf(h, proxy, client), client, `${proxy} is trusted`);
  }
  assert.equal(await clientIpOf(h, "203.0.113.9", client), client, "a /32");
  assert.equal(await clientIpOf(h, "198.18.0.1", client), client, "a plain address");
  // Just outside: the peer itself is the client, whatever it forwards.
  for (
    const peer of ["11.0.0.1", "9.255.255.255", "192.168.8.1", "192.168.6.255", "203.0.113.8"]
  ) {
    assert.equal(await clientIpOf(h, peer, client), peer, `${peer} is not trusted`);
  }
  // A prefix of an address is not a range: 10.0.0.0/8 must not make "100.1.1.1" a proxy.
  assert.equal(await clientIpOf(h, "100.1.1.1", client), "100.1.1.1");
  // Through two trusted hops, the rightmost untrusted address is the client; whatever the
  // client wrote to the left of it does not count.
  assert.equal(await clientIpOf(h, "10.9.9.9", `6.6.6.6, ${client}, 10.1.1.1`), client);
  // Every hop trusted: the peer is the client (nothing untrusted to blame).
  assert.equal(await clientIpOf(h, "10.9.9.9", "10.1.1.1, 192.168.7.3"), "10.9.9.9");
  // A trusted proxy that forwards nothing: the peer.
  assert.equal(await clientIpOf(h, "10.9.9.9"), "10.9.9.9");
});

Deno.test("TRUSTED_PROXIES: IPv6 addresses and ranges, in any spelling", async () => {
  await using h = await createTestApp({
    ...generous,
    TRUSTED_PROXIES: "2001:DB8:0:0:0:0:0:1, fd00:abcd::/32, ::1",
  });
  const client = "2001:db8:ffff::42";
  // The same address, written compressed and lowercase by the socket layer.
  assert.equal(await clientIpOf(h, "2001:db8::1", client), client);
  // Inside the /32, at both of its ends, and outside it.
  for (
    const proxy of ["fd00:abcd::", "fd00:abcd:ffff:ffff:ffff:ffff:ffff:ffff", "fd00:abcd:1::9"]
  ) {
    assert.equal(await clientIpOf(h, proxy, client), client, `${proxy} is trusted`);
  }
  for (const peer of ["fd00:abce::1", "fd00:abcc:ffff::1", "2001:db8::2"]) {
    assert.equal(await clientIpOf(h, peer, client), peer, `${peer} is not trusted`);
  }
  assert.equal(await clientIpOf(h, "::1", "198.51.100.7"), "198.51.100.7", "an IPv4 client");
  // IPv6 hops in the chain are skipped like IPv4 ones.
  assert.equal(await clientIpOf(h, "::1", `${client}, fd00:abcd::7`), client);
});

Deno.test("TRUSTED_PROXIES: an IPv4 proxy is recognised on a dual-stack listener (::ffff:a.b.c.d)", async () => {
  await using h = await createTestApp({ ...generous, TRUSTED_PROXIES: "127.0.0.0/8" });
  // HOST=:: takes IPv4 connections too; their peers arrive as IPv4-mapped IPv6 addresses.
  await using server = Deno.serve(
    { hostname: "::", port: 0, onListen: () => {} },
    (req, info) => h.app.fetch(req, { remoteAddr: info.remoteAddr }),
  );
  const viaSocket = (req: Request) =>
    fetch(req.url.replace("http://localhost", `http://127.0.0.1:${server.addr.port}`), {
      method: req.method,
      headers: req.headers,
      body: req.body,
    });
  assert.equal(await clientIpOf(h, "", "198.51.100.9", viaSocket), "198.51.100.9");
  // Without a forwarding header the peer itself, as the socket reported it.
  assert.equal(await clientIpOf(h, "", undefined, viaSocket), "::ffff:127.0.0.1");
  // The same in-process: an untrusted mapped peer is not trusted by being mapped.
  assert.equal(await clientIpOf(h, "::ffff:8.8.8.8", "198.51.100.9"), "::ffff:8.8.8.8");
});

Deno.test("TRUSTED_PROXIES: malformed entries and addresses trust nothing, and never fail a request", async () => {
  await using h = await createTestApp({
    ...generous,
    TRUSTED_PROXIES: "10.0.0.0/33, 10.0.0.0/x, 10.0.0.0/, 300.1.1.1, ::g, fd00::/129, 10.0.0.0/-1",
  });
  for (const peer of ["10.0.0.1", "fd00::1", "unknown"]) {
    assert.equal(await clientIpOf(h, peer, "198.51.100.7"), peer, peer);
  }
});

Deno.test("an unexpected error is a JSON 500 with the request id, and nothing of the error", async () => {
  await using cleanup = new AsyncDisposableStack();
  const dataDir = await Deno.makeTempDir({ prefix: "pomodex-test-" });
  cleanup.defer(() => Deno.remove(dataDir, { recursive: true }));
  const db = cleanup.use(await createTestDatabase());
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("debug", (line) => lines.push(JSON.parse(line)));
  const config = testConfig(dataDir, db.url);
  const deps = await createServices(config, db.sql, log);
  cleanup.defer(() => deps.engine.close());
  const app = createApp(deps);
  // A failure no handler knows: the database raises an error of its own while a user is
  // registered. Its message carries what must never reach a client.
  const marker = `leak-marker-${crypto.randomUUID()}`;
  await db.sql.unsafe(`
      CREATE FUNCTION refuse_users() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION '${marker} password=hunter2 at /srv/pomodex/lib/x.ts:1:1'; END $$;
      CREATE TRIGGER refuse_users BEFORE INSERT ON users
        FOR EACH ROW EXECUTE FUNCTION refuse_users();`);
  const register = (headers: Record<string, string>) =>
    app.fetch(
      new Request("http://localhost/auth/register", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ email: "five@example.com", password: "correct horse battery" }),
      }),
      { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } },
    );

  const given = "req-given-by-client-1";
  const res = await register({ "x-request-id": given });
  const text = await res.text();
  assert.equal(res.status, 500, text);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(text), {
    detail: "Something went wrong on our side",
    code: "internal_error",
  });
  for (const secret of [marker, "hunter2", "PostgresError", "/srv/pomodex", "at ", "P0001"]) {
    assert.ok(!text.includes(secret), `the body shows ${secret}: ${text}`);
  }
  assert.equal(res.headers.get("x-request-id"), given, "the client's own id, echoed");

  // Without an id of the client's, one is made: the answer and the log share it.
  const second = await register({});
  await second.body?.cancel();
  assert.equal(second.status, 500);
  const made = second.headers.get("x-request-id") ?? "";
  assert.match(made, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

  // The operator gets the whole story in the log, under the id the client can quote.
  for (const id of [given, made]) {
    const entry = lines.find((l) => l.msg === "unhandled error" && l.request_id === id);
    assert.ok(entry, `an error line for ${id}: ${JSON.stringify(lines.slice(-5))}`);
    assert.equal(entry.level, "error");
    assert.equal(entry.route, "/auth/register");
    assert.match(JSON.stringify(entry.error), new RegExp(marker));
    assert.equal(typeof entry.stack, "string");
  }
});

Deno.test("who gets an error page: the API's paths answer JSON even to a browser; the dashboard's get pages", async () => {
  await using h = await createTestApp({ BODY_LIMIT_BYTES: "1024" });
  const browser = { accept: "text/html,application/xhtml+xml" };
  const typeOf = async (path: string, init: RequestInit = {}) => {
    const res = await h.request(path, init);
    await res.body?.cancel();
    return `${res.status} ${res.headers.get("content-type")?.split(";")[0]}`;
  };
  // Unknown paths under the API's mounts: JSON, whoever asks (401 first where a login is due).
  for (const path of ["/auth/nope", "/.well-known/nope", "/health/nope"]) {
    assert.equal(await typeOf(path, { headers: browser }), "404 application/json", path);
  }
  for (const path of ["/projects/x/y/z", "/admin/nope"]) {
    assert.equal(await typeOf(path, { headers: browser }), "401 application/json", path);
  }
  // A browser anywhere else gets the dashboard's page; a client gets JSON.
  assert.equal(await typeOf("/nope", { headers: browser }), "404 text/html");
  assert.equal(await typeOf("/nope"), "404 application/json");
  // Refused by the app's body limit before any route: still a page on the dashboard's paths,
  // still JSON on the API's.
  const big = { method: "POST", body: "x".repeat(4096), headers: { ...browser } };
  assert.equal(await typeOf("/dashboard/projects", big), "413 text/html");
  assert.equal(
    await typeOf("/projects", { ...big, headers: { "content-type": "application/json" } }),
    "413 application/json",
  );
});
