import { startServer } from "../reliability/helpers/server.ts";
import { createTestDatabase, type TestDatabase } from "../tests/helpers/db.ts";

/**
 * The real server as its own process (the reliability suite's launcher) over a fresh
 * PostgreSQL database, so its memory can be read from /proc apart from the benchmark's.
 */
export interface BenchServer {
  url: string;
  pid: number;
  db: TestDatabase;
  close(): Promise<void>;
}

/** Each bench server's VmHWM, read as it closes: the report lists them all. */
export const serverPeaksMb = new Map<string, number>();

export async function startBenchServer(
  label: string,
  env: Record<string, string> = {},
): Promise<BenchServer> {
  const db = await createTestDatabase();
  const dataDir = await Deno.makeTempDir({ prefix: "pomodex-bench-" });
  const server = await startServer(
    { DATABASE_URL: db.url, DATA_DIR: dataDir, CRON: "false", ...env },
    { name: "bench" },
  );
  /** VmHWM: the largest resident set the server process has had. */
  const peakRssMb = async () => {
    const status = await Deno.readTextFile(`/proc/${server.pid}/status`);
    return Number(status.match(/VmHWM:\s+(\d+) kB/)![1]) / 1024;
  };
  return {
    url: server.url,
    pid: server.pid,
    db,
    async close() {
      const peak = await peakRssMb().catch(() => null);
      if (peak !== null) serverPeaksMb.set(label, Math.max(serverPeaksMb.get(label) ?? 0, peak));
      await server.stop();
      await db.drop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}
