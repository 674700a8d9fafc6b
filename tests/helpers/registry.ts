/**
 * A registry of the test's own on localhost:5001 (marked insecure for the engine by
 * scripts/setup-engine.sh), so a test can take it down without touching the shared one.
 */
export interface TestRegistry {
  address: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestRegistry(port = 5001): Promise<TestRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "pomodex-registry-" });
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
      "",
    ].join("\n"),
  );
  let child: Deno.ChildProcess | null = null;
  const registry: TestRegistry = {
    address: `localhost:${port}`,
    async start() {
      child = new Deno.Command("docker-registry", {
        args: ["serve", `${dir}/config.yml`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const deadline = Date.now() + 10_000;
      while (true) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/v2/`);
          await res.body?.cancel();
          if (res.ok) return;
        } catch { /* not up yet */ }
        if (Date.now() > deadline) throw new Error(`test registry did not start on :${port}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!child) return;
      child.kill("SIGKILL");
      await child.status;
      child = null;
    },
    async close() {
      await registry.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
  await registry.start();
  return registry;
}
