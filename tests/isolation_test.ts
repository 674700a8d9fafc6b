// Tenant isolation, tried as an attacker with two accounts (issue 13): from inside a real
// sandbox, over SSH, nothing of another tenant, of the host or of private and link-local
// ranges answers; root inside is not root outside; the workspace has a size.
import assert from "node:assert/strict";
import { createTestApp, type TestApp } from "./helpers/app.ts";
import { requireEngine } from "./helpers/engine.ts";
import { createNetns } from "./helpers/netns.ts";
import { call, createRunning, engineTest } from "./helpers/projects.ts";
import { sshRun } from "./helpers/ssh.ts";
import { signUp } from "./helpers/users.ts";

/** Tries TCP connects from inside the sandbox; each target answers "open" or "refused". */
async function probe(project: SshTarget, targets: string[]): Promise<Record<string, string>> {
  const script = targets.map((t) => {
    const [host, port] = t.split(":");
    return `if timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null; ` +
      `then echo "${t} open"; else echo "${t} refused"; fi`;
  }).join("; ");
  const out = await sshRun(project, project.ssh_private_key, script);
  assert.equal(out.code, 0, out.stderr);
  return Object.fromEntries(out.stdout.trim().split("\n").map((l) => l.split(" ")));
}

interface SshTarget {
  id: string;
  ssh_host: string;
  ssh_port: number;
  ssh_user: string;
  ssh_private_key: string;
}

/** A TCP service on every address of this host, as the API and the terminal proxy are. */
function listenEverywhere(): { port: number } & Disposable {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  (async () => {
    for await (const conn of listener) {
      await conn.write(new TextEncoder().encode("host secret\n")).catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, [Symbol.dispose]: () => listener.close() };
}

const hostAddress = () =>
  Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.") && !i.address.startsWith("10.213.")
  )!.address;

async function sandboxAddress(projectId: string): Promise<{ ip: string; gateway: string }> {
  using engine = await requireEngine();
  const info = await engine.inspectContainer(`pomodex-${projectId}`);
  const net = Object.values(info?.NetworkSettings.Networks ?? {})[0] as {
    IPAddress: string;
    Gateway: string;
  };
  return { ip: net.IPAddress, gateway: net.Gateway };
}

async function twoTenants(h: TestApp) {
  const alice = await signUp(h), bob = await signUp(h);
  const a = await createRunning(h, alice, "alice's");
  const b = await createRunning(h, bob, "bob's");
  return { alice, bob, a, b };
}

engineTest(
  "a sandbox reaches no other sandbox, nothing on the host, no private or link-local address",
  async () => {
    await using h = await createTestApp();
    await using privateNet = await createNetns();
    using host = listenEverywhere();
    const { alice, a, b } = await twoTenants(h);
    // Bob serves a file on 8080 without authentication, as in the finding.
    const serve = await sshRun(
      b,
      b.ssh_private_key,
      `nohup perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,` +
        `ReuseAddr=>1) or die; while($c=$s->accept){print $c "bob secret\\n"; close $c}' ` +
        `>/dev/null 2>&1 & sleep 0.5; cat < /dev/tcp/127.0.0.1/8080`,
    );
    assert.equal(serve.stdout.trim(), "bob secret", "Bob's server runs (control)");
    // A server in a private range, which this host itself reaches (control below).
    await using _privateServer = new Deno.Command("ip", {
      args: ["netns", "exec", privateNet.name, "python3", "-m", "http.server", "8081"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForTcp(privateNet.peerAddress, 8081);
    const bob = await sandboxAddress(b.id), alicesNet = await sandboxAddress(a.id);
    const targets = {
      [`${bob.ip}:22`]: "Bob's sshd",
      [`${bob.ip}:8080`]: "Bob's web server",
      [`${alicesNet.gateway}:${host.port}`]: "a host service on Alice's gateway",
      [`${bob.gateway}:${host.port}`]: "a host service on Bob's gateway",
      [`${hostAddress()}:${host.port}`]: "a host service on the host's own address",
      [`${privateNet.peerAddress}:8081`]: "a server in a private range",
      "169.254.169.254:80": "the cloud metadata address",
      "127.0.0.1:22": "Alice's own sshd (control)",
    };
    let alicesSandbox: SshTarget = a;
    const expectRefused = async (when: string) => {
      const seen = await probe(alicesSandbox, Object.keys(targets));
      for (const [target, what] of Object.entries(targets)) {
        const expected = target === "127.0.0.1:22" ? "open" : "refused";
        assert.equal(seen[target], expected, `${when}: ${what} (${target}) is ${seen[target]}`);
      }
    };
    await expectRefused("new project");

    // The engine may rewrite its own rules as it likes (netavark and Docker insert ACCEPTs
    // at the top of FORWARD): the sandbox firewall is a table of its own.
    // A block of its own: the rules are gone again before the project is restored below.
    {
      await run("iptables", ["-I", "FORWARD", "1", "-j", "ACCEPT"]);
      await run("iptables", ["-I", "INPUT", "1", "-j", "ACCEPT"]);
      await using rules = new AsyncDisposableStack();
      rules.defer(async () => {
        await run("iptables", ["-D", "FORWARD", "-j", "ACCEPT"]);
        await run("iptables", ["-D", "INPUT", "-j", "ACCEPT"]);
      });
      await expectRefused("with ACCEPT rules at the top of the engine's chains");
    }

    // Restored from its snapshot, on the same network.
    assert.equal((await call(h, alice, "POST", `/projects/${a.id}/stop`)).status, 200);
    const restarted = await call(h, alice, "POST", `/projects/${a.id}/start`);
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    assert.equal((await sandboxAddress(a.id)).gateway, alicesNet.gateway, "same network");
    alicesSandbox = { ...restarted.body, ssh_private_key: a.ssh_private_key };
    await expectRefused("restored from a snapshot");

    // DNS still answers: the sandbox resolves a name through its network's resolver.
    const dns = await sshRun(alicesSandbox, a.ssh_private_key, `getent hosts pomodex-${a.id}`);
    assert.equal(dns.code, 0, `DNS from the sandbox: ${dns.stderr}`);
  },
);

engineTest("root in a sandbox is an unprivileged host uid, and sudo still works", async () => {
  // The run's setting decides: required (Docker with --userns-remap) or off (Podman 4.3).
  await using h = await createTestApp({ SANDBOX_USERNS: "required" });
  if (await isPodman()) {
    // Podman 4.3 cannot snapshot a user-namespaced sandbox: refused, never root on the host.
    const user = await signUp(h);
    const refused = await call(h, user, "POST", "/projects", { name: "p" });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.code, "isolation_unavailable");
    assert.match(refused.body.detail, /Podman cannot snapshot .* user namespace/);
    const [{ count }] = await h.sql`SELECT count(*)::int AS count FROM projects`;
    assert.equal(count, 0, "refused before anything was made");
    return;
  }
  const user = await signUp(h);
  const p = await createRunning(h, user);
  const out = await sshRun(
    p,
    p.ssh_private_key,
    "sudo cat /proc/self/uid_map; sudo touch /opt/installed && ls -n /opt/installed",
  );
  assert.equal(out.code, 0, out.stderr);
  const [inside, outside, size] = out.stdout.trim().split("\n")[0].trim().split(/\s+/).map(
    Number,
  );
  assert.equal(inside, 0);
  assert.notEqual(outside, 0, "root inside must not be root on the host");
  assert.ok(size <= 65536, `a bounded range, not the whole uid space (${size})`);
  assert.match(out.stdout, / 0 +0 .*\/opt\/installed/, "root inside can still install");
});

engineTest("a workspace holds WORKSPACE_DISK_GB and no more; the API shows its use", async () => {
  await using h = await createTestApp({ WORKSPACE_DISK_GB: "1" });
  const user = await signUp(h);
  const p = await createRunning(h, user);
  const fill = await sshRun(
    p,
    p.ssh_private_key,
    "df -B1 --output=size ~ | tail -1; dd if=/dev/zero of=~/fill bs=1M count=1200 2>&1 | " +
      "grep -o 'No space left on device' | head -1",
  );
  const [size, error] = fill.stdout.trim().split("\n");
  assert.ok(Number(size) > 0.9 * 1024 ** 3 && Number(size) <= 1024 ** 3, `df says ${size}`);
  assert.equal(error, "No space left on device");
  const full = await call(h, user, "GET", `/projects/${p.id}`);
  assert.ok(
    full.body.disk.workspace_used_bytes > 0.9 * 1024 ** 3,
    JSON.stringify(full.body.disk),
  );
  assert.equal(full.body.disk.workspace_limit_bytes, 1024 ** 3);
  // Nothing outside noticed: the host holds the image, sparse, at most its size.
  const image = await Deno.stat(`${h.dataDir}/workspaces/${p.id}.ext4`);
  assert.equal(image.size, 1024 ** 3);
  // Freeing space makes room again.
  const again = await sshRun(
    p,
    p.ssh_private_key,
    "rm ~/fill && echo ok > ~/after && cat ~/after",
  );
  assert.equal(again.stdout.trim(), "ok");
});

async function isPodman() {
  using engine = await requireEngine();
  return (await engine.version()).Components?.some((c) => /podman/i.test(c.Name)) ?? false;
}

async function waitForTcp(hostname: string, port: number) {
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname, port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nothing listens on ${hostname}:${port}`);
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
