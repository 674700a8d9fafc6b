import { newEngineClient, removeEverything } from "@/reliability/helpers/engine.ts";
import { startServer } from "@/tests/helpers/server.ts";
import { removeDirSafely } from "@/reliability/helpers/workspace.ts";
import { createTestDatabase, type TestDatabase } from "@/tests/helpers/db.ts";

/**
 * The real server as its own process (the reliability suite's launcher) over a fresh
 * PostgreSQL database, so its memory can be read from /proc apart from the benchmark's.
 * As production runs it: the sandbox firewall, a network and an ext4 workspace per project,
 * and its egress proxy (on a free port of its own).
 */
export interface BenchServer extends AsyncDisposable {
  url: string;
  pid: number;
  db: TestDatabase;
  /** WORKSPACE_DIR: the server's workspace images and their mount points. */
  workspaceDir: string;
  /** The terminal proxy child's port, once it listens (TERMINAL_PROXY=true). */
  terminalPort: Promise<number>;
  /** Stops the server and removes all it made; `await using` calls it. */
  close(): Promise<void>;
}

/** Each bench server's VmHWM, read as it closes: the report lists them all. */
export const serverPeaksMb = new Map<string, number>();

/**
 * The bench servers' sandbox networks: a pool of their own, apart from the default one
 * (10.213.0.0/16) and from the bare floors' networks (bench/bare.ts, 10.216.0.0/16).
 */
export const BENCH_SUBNET_POOL = "10.215.0.0/16";

export async function startBenchServer(
  label: string,
  env: Record<string, string> = {},
): Promise<BenchServer> {
  // Until the server is up, what is made for it goes again if a step fails (the database,
  // then the directory); once it is up, close() removes it.
  await using failed = new AsyncDisposableStack();
  const dataDir = await Deno.realPath(await Deno.makeTempDir({ prefix: "pomodex-bench-" }));
  failed.defer(() => removeDirSafely(dataDir));
  const db = failed.use(await createTestDatabase());
  const workspaceDir = `${dataDir}/workspaces`;
  const started = await startServer(
    {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      WORKSPACE_DIR: workspaceDir,
      SANDBOX_SUBNET_POOL: BENCH_SUBNET_POOL,
      CRON: "false",
      ...env,
    },
    { name: "bench" },
  );
  failed.move();
  /** VmHWM: the largest resident set the server process has had. */
  const peakRssMb = async () => {
    const status = await Deno.readTextFile(`/proc/${started.pid}/status`);
    return Number(status.match(/VmHWM:\s+(\d+) kB/)![1]) / 1024;
  };
  const close = async () => {
    const peak = await peakRssMb().catch(() => null);
    if (peak !== null) serverPeaksMb.set(label, Math.max(serverPeaksMb.get(label) ?? 0, peak));
    await started.stop();
    // Whatever a bench that failed half-way left: containers, networks, workspaces.
    const installation = (await db.sql<{ id: string }[]>`SELECT id FROM installation`
      .catch(() => []))[0]?.id ?? null;
    const ids = (await db.sql<{ id: string }[]>`SELECT id FROM projects`.catch(() => []))
      .map((r) => r.id);
    {
      using engine = newEngineClient();
      await removeEverything(engine, installation, ids, { workspaceDir });
    }
    await db.drop();
    await removeDirSafely(dataDir);
  };
  return {
    url: started.url,
    pid: started.pid,
    db,
    workspaceDir,
    terminalPort: started.terminalPort,
    close,
    [Symbol.asyncDispose]: close,
  };
}
