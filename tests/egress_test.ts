// Egress policy, enforced on the network path (issue 13): the real server with its real Squid,
// a real sandbox over SSH, and stand-in web sites in network namespaces. The proxy resolves
// their names from a hosts file (EGRESS_HOSTS_FILE), as it would from DNS.
import assert from "node:assert/strict";
import { loadConfig } from "@/core/config.ts";
import { start } from "@/main.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { engineEnv, SKIP_ENGINE_TESTS } from "./helpers/engine.ts";
import { createNetns, type TestNetns } from "./helpers/netns.ts";
import { whoAnswers } from "./helpers/ports.ts";
import { sshRun } from "./helpers/ssh.ts";
import { removeWorkspaceOf } from "./helpers/workspace.ts";
import { signUp } from "./helpers/users.ts";

const ALLOWED = "allowed.example.test";
const OTHER = "other.example.test";

Deno.test({
  name: "egress: allowlist, none and open hold on a running sandbox, switched without a restart",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using cleanup = new AsyncDisposableStack();
    const dataDir = await Deno.makeTempDir({ prefix: "pomodex-egresstest-" });
    cleanup.defer(() => Deno.remove(dataDir, { recursive: true }));
    const db = cleanup.use(await createTestDatabase());
    const privateNet = cleanup.use(await createNetns());
    const internet = cleanup.use(await createNetns({ prefix: "198.18" }));
    // Disposing a child process sends it SIGTERM and waits for it to exit.
    cleanup.use(
      new Deno.Command("ip", {
        args: ["netns", "exec", privateNet.name, "python3", "-m", "http.server", "80"],
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    cleanup.use(await startTargetSite(internet, dataDir));
    await Deno.writeTextFile(
      `${dataDir}/hosts`,
      `${internet.peerAddress} ${ALLOWED} www.${ALLOWED} ${OTHER}\n` +
        `${privateNet.peerAddress} private.example.test\n`,
    );
    const server = await startWithEgressProxy(dataDir, db.url);
    cleanup.defer(() => server.shutdown());
    const base = `http://127.0.0.1:${server.port}`;
    let projectId: string | null = null;
    cleanup.defer(async () => {
      if (projectId) {
        const auth = await login(base).catch(() => null);
        if (auth) await api(base, auth, "DELETE", `/projects/${projectId}`).catch(() => {});
        await removeWorkspaceOf(dataDir, projectId).catch(() => {});
      }
    });
    const { auth } = await signUp(base, { email: EMAIL, password: PASSWORD });
    const created = await api(base, auth, "POST", "/projects", { name: "egress" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const p = created.body;
    projectId = p.id;
    const sh = async (cmd: string) => (await sshRun(p, p.ssh_private_key, cmd)).stdout.trim();
    /** What curl in the sandbox gets: the body, or "failed (exit code)". */
    const fetchFrom = (url: string, opts = "") =>
      sh(`curl -fsk --max-time 5 ${opts} ${url} || echo "failed ($?)"`);
    const direct = `--noproxy '*'`;
    const setPolicy = async (policy: string, allowlist?: string[]) => {
      const res = await api(base, auth, "PUT", `/projects/${p.id}/egress`, { policy, allowlist });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    /** Waits out the proxy's decision cache (EGRESS_DECISION_TTL_SECONDS) for a change. */
    const eventually = async (url: string, expected: RegExp, opts = "") => {
      let got = "";
      for (let i = 0; i < 20; i++) {
        got = await fetchFrom(url, opts);
        if (expected.test(got)) return;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.match(got, expected, `${url} ${opts}`);
    };

    await t.step(
      "the sandbox has the proxy in its environment, sudo and apt included",
      async () => {
        const env = await sh("echo $https_proxy; sudo -n apt-config dump | grep -c Proxy");
        const [proxy, apt] = env.split("\n");
        assert.match(proxy, /^http:\/\/10\.213\.\d+\.\d+:\d+$/);
        assert.equal(apt, "2");
      },
    );

    await t.step(
      "open (the default): the public internet, directly and through the proxy",
      async () => {
        assert.equal(
          (await api(base, auth, "GET", `/projects/${p.id}/egress`)).body.policy,
          "open",
        );
        assert.equal(
          await fetchFrom(`http://${internet.peerAddress}/`, direct),
          `hello from ${internet.peerAddress}`,
        );
        assert.equal(await fetchFrom(`https://${OTHER}/`), `hello from ${OTHER}`);
        // Never private or link-local ranges, nor the host, whatever the policy.
        assert.match(await fetchFrom("http://private.example.test/"), /^failed/);
        assert.match(await fetchFrom(`http://${privateNet.peerAddress}/`, direct), /^failed/);
        assert.match(await fetchFrom("http://169.254.169.254/"), /^failed/);
        assert.match(
          await fetchFrom(`http://127.0.0.1:${server.port}/health`, "--proxy $http_proxy"),
          /^failed/,
        );
      },
    );

    await t.step(
      "allowlist: HTTP and HTTPS to the listed domain and its subdomains only",
      async () => {
        const set = await setPolicy("allowlist", [ALLOWED]);
        assert.deepEqual(set.allowlist, [ALLOWED]);
        await eventually(`https://${OTHER}/`, /^failed/);
        assert.equal(await fetchFrom(`http://${ALLOWED}/`), `hello from ${ALLOWED}`);
        assert.equal(await fetchFrom(`https://${ALLOWED}/`), `hello from ${ALLOWED}`);
        assert.equal(await fetchFrom(`https://www.${ALLOWED}/`), `hello from www.${ALLOWED}`);
        // Each (host, port, method) has its own entry in the proxy's cache: wait for it too.
        await eventually(`http://${OTHER}/`, /^failed/);
        // No direct route out any more, and no other port through the proxy.
        await eventually(`http://${internet.peerAddress}/`, /^failed/, direct);
        assert.match(await fetchFrom(`https://${ALLOWED}:8443/`), /^failed/);
      },
    );

    await t.step("none: nothing, the allowed domain included", async () => {
      await setPolicy("none");
      await eventually(`https://${ALLOWED}/`, /^failed/);
      await eventually(`http://${ALLOWED}/`, /^failed/);
    });

    await t.step("back to open: reachable again, still without a restart", async () => {
      await setPolicy("open");
      await eventually(`http://${internet.peerAddress}/`, /^hello/, direct);
      await eventually(`https://${OTHER}/`, /^hello/);
    });

    await t.step("a bad policy or domain is a 422; the operator may forbid open", async () => {
      const bad = await api(base, auth, "PUT", `/projects/${p.id}/egress`, {
        policy: "allowlist",
        allowlist: ["10.0.0.1"],
      });
      assert.equal(bad.status, 422, JSON.stringify(bad.body));
      const unknown = await api(base, auth, "PUT", `/projects/${p.id}/egress`, {
        policy: "some",
      });
      assert.equal(unknown.status, 422);
    });
  },
});

const EMAIL = "egress@example.com", PASSWORD = "correct horse battery";

async function login(base: string) {
  const res = await fetch(`${base}/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
  });
  const body = await res.json();
  return { authorization: `Bearer ${body.access_token}` };
}

async function api(
  base: string,
  auth: Record<string, string>,
  method: string,
  path: string,
  json?: unknown,
) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...auth, ...(json ? { "content-type": "application/json" } : {}) },
    body: json ? JSON.stringify(json) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The stand-in site: a self-signed certificate (curl -k: the tunnel is what is tested). */
async function startTargetSite(ns: TestNetns, dir: string) {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${ALLOWED}`,
      "-keyout",
      `${dir}/site.key`,
      "-out",
      `${dir}/site.crt`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns.name,
      Deno.execPath(),
      "run",
      "-A",
      new URL("./fakes/egress_target.ts", import.meta.url).pathname,
      `${dir}/site.crt`,
      `${dir}/site.key`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assert.match(value ?? "", /ready/);
  reader.releaseLock();
  return child;
}

/**
 * The real server with its Squid. Squid's port has to be a number given to it (it cannot
 * bind port 0 and say which it got): a free one, taken a moment ago. If something else binds
 * it before Squid does, Squid is not what answers there; then the server starts again, on
 * another port.
 */
async function startWithEgressProxy(dataDir: string, databaseUrl: string) {
  for (let attempt = 1;; attempt++) {
    const probe = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const server = await start(loadConfig({
      ...engineEnv(),
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl,
      TERMINAL_PROXY: "false",
      CRON: "false",
      LOG_LEVEL: "error",
      EGRESS_PROXY_PORT: String(port),
      EGRESS_HOSTS_FILE: `${dataDir}/hosts`,
    }));
    if (await whoAnswers(port, 30_000) === "squid") return server;
    await server.shutdown();
    if (attempt >= 3) throw new Error(`the egress proxy never got a port (last: ${port})`);
    console.warn(`port ${port} was taken before Squid bound it; another one`);
  }
}
