import postgres from "postgres";
import type { Logger } from "@/core/log.ts";

export type Sql = postgres.Sql<Record<string, never>>;
/** A piece of SQL built with sql`...`, to splice into another query. */
export type SqlFragment = postgres.PendingQuery<postgres.Row[]>;

export interface Database {
  sql: Sql;
  kind: "postgres" | "pglite";
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string;
  dataDir: string;
  poolSize: number;
  log: Logger;
}

const common = {
  transform: postgres.camel,
  onnotice: () => {},
  connection: { application_name: "pomodex" },
} as const;

/** PostgreSQL when a URL is given, else the embedded PGlite database in the data directory. */
export function openDatabase(opts: DatabaseOptions): Promise<Database> {
  return opts.url ? openPostgres(opts.url, opts.poolSize) : openPglite(opts.dataDir, opts.log);
}

/**
 * Seconds before a connection tries again after failing. postgres.js's default grows 3^n
 * with every failure, shared by the pool, up to 20 s: after a database restart of a few
 * seconds, queries waited up to 20 s for a reconnect to a server long back
 * (reliability/faults_test.ts). Trying again within a second costs one refused connect.
 */
export function reconnectBackoff(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1);
}

function openPostgres(url: string, poolSize: number): Promise<Database> {
  const sql = postgres(url, {
    ...common,
    max: poolSize,
    connect_timeout: 10,
    backoff: reconnectBackoff,
  }) as unknown as Sql;
  return Promise.resolve({
    sql,
    kind: "postgres",
    close: () => sql.end({ timeout: 5 }),
  });
}

async function openPglite(dataDir: string, log: Logger): Promise<Database> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const dir = await Deno.realPath(await ensureDir(dataDir));
  const pg = await PGlite.create(`${dir}/pglite`);
  // postgres.js speaks the wire protocol, so PGlite is served on a private unix socket.
  const socketPath = `${dir}/.s.PGSQL.pglite`;
  await Deno.remove(socketPath).catch(() => {});
  const server = new PGLiteSocketServer({ db: pg, path: socketPath, maxConnections: 1 });
  await server.start();
  const sql = postgres({
    ...common,
    path: socketPath,
    max: 1,
    database: "postgres",
  }) as unknown as Sql;
  log.info("database: embedded PGlite (DATABASE_URL is not set)", { dir: `${dir}/pglite` });
  return {
    sql,
    kind: "pglite",
    close: async () => {
      await sql.end({ timeout: 5 });
      await server.stop();
      await pg.close();
    },
  };
}

async function ensureDir(path: string): Promise<string> {
  await Deno.mkdir(path, { recursive: true, mode: 0o700 });
  return path;
}
