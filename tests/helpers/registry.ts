/**
 * A registry of the test's own, so a test can take it down without touching the shared one.
 *
 * Its port is fixed (5001) because it has to be: Podman pushes over plain HTTP only to the
 * registries /etc/containers/registries.conf lists as insecure, and scripts/setup-engine.sh
 * lists localhost:5001 for this (Docker trusts all of 127.0.0.0/8). It cannot collide:
 *   - with an ephemeral port: Linux hands those out from 32768 up (ip_local_port_range);
 *   - with another test's registry, in this run or in another run on the same machine: the
 *     one that starts a registry holds an exclusive lock on a file named after the port until
 *     it closes it (the kernel drops the lock if the process dies), and the others wait;
 *   - with anything else that listens there: the registry answers with a header carrying an
 *     id of its own, and one that does not is not ours: the start fails and says so, rather
 *     than the test pushing to a stranger.
 */
export interface TestRegistry extends AsyncDisposable {
  address: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const ID_HEADER = "X-Pomodex-Test-Registry";

export async function startTestRegistry(port = 5001): Promise<TestRegistry> {
  const lock = await Deno.open(
    `${Deno.env.get("TMPDIR") ?? "/tmp"}/pomodex-test-registry-${port}.lock`,
    {
      create: true,
      write: true,
    },
  );
  await lock.lock(true); // waits for another test's registry on this port to close
  const dir = await Deno.makeTempDir({ prefix: "pomodex-registry-" });
  const id = crypto.randomUUID();
  await Deno.writeTextFile(
    `${dir}/config.yml`,
    [
      "version: 0.1",
      "log: { level: error }",
      "storage:",
      `  filesystem: { rootdirectory: ${dir}/data }`,
      "  delete: { enabled: true }",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      `  headers: { ${ID_HEADER}: [${id}] }`,
      "",
    ].join("\n"),
  );
  let child: Deno.ChildProcess | null = null;
  const registry: TestRegistry = {
    address: `localhost:${port}`,
    async start() {
      const started = new Deno.Command("docker-registry", {
        args: ["serve", `${dir}/config.yml`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      child = started;
      const state: { exited: Deno.CommandStatus | null } = { exited: null };
      started.status.then((s) => state.exited = s);
      const deadline = Date.now() + 10_000;
      let stranger = false;
      while (true) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v2/`);
          await res.body?.cancel();
          if (res.ok && res.headers.get(ID_HEADER) === id) return;
          stranger = res.ok;
        } catch { /* not up yet */ }
        const exited = state.exited;
        if (exited || Date.now() > deadline) {
          await registry.stop();
          throw new Error(
            stranger
              ? `something else answers on 127.0.0.1:${port}: the test registry cannot start there`
              : `the test registry did not start on 127.0.0.1:${port}` +
                (exited ? ` (docker-registry exited with ${exited.code})` : ""),
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!child) return;
      try {
        child.kill("SIGKILL");
      } catch { /* exited already */ }
      await child.status;
      child = null;
    },
    async [Symbol.asyncDispose]() {
      await registry.close();
    },
    async close() {
      try {
        await registry.stop();
        await Deno.remove(dir, { recursive: true });
      } finally {
        lock.close(); // releases the port to the next test
      }
    },
  };
  try {
    await registry.start();
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    lock.close();
    throw err;
  }
  return registry;
}
