/**
 * A private PostgreSQL cluster for a test that restarts its database: the shared server
 * on :5432 serves every other test and must never go down. The binaries run as the
 * `postgres` OS user (initdb refuses root), in a temp dir that user owns.
 */

const BIN = Deno.env.get("POSTGRES_BIN") ?? "/usr/lib/postgresql/15/bin";

export interface PrivateCluster extends AsyncDisposable {
  url: string;
  port: number;
  dir: string;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  start(): Promise<void>;
  restart(mode?: "fast" | "immediate"): Promise<void>;
  /** Stops the cluster (if up) and removes its directory; `await using` calls it. */
  destroy(): Promise<void>;
}

async function asPostgres(cmd: string, args: string[]): Promise<string> {
  const runAs = Deno.uid() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  const argv = [...runAs, `${BIN}/${cmd}`, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${out.code}\n${dec.decode(out.stdout)}${
        dec.decode(out.stderr)
      }`,
    );
  }
  return dec.decode(out.stdout);
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dir = await Deno.makeTempDir({ prefix: "pomodex-rel-pg-" });
  const data = `${dir}/data`;
  if (Deno.uid() === 0) {
    const chown = await new Deno.Command("chown", { args: ["-R", "postgres:postgres", dir] })
      .output();
    if (chown.code !== 0) throw new Error("chown of the cluster directory failed");
  }
  // The port stays the cluster's through every stop and start: the test holds it on
  // 127.0.0.1 (so nothing can bind it on every address, and no outgoing connection is given
  // it as its source port), and PostgreSQL listens on 127.0.0.2, the same loopback. While the
  // cluster is down, connects are refused, as from a stopped server, and nobody can take the
  // port meanwhile (a port probed free and given back could be, mid-test).
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  const pgCtl = (args: string[]) =>
    asPostgres("pg_ctl", [
      "-D",
      data,
      "-l",
      `${dir}/server.log`,
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.2 -c fsync=off`,
      ...args,
    ]);
  let up = false;
  const cluster: PrivateCluster = {
    url: `postgres://postgres@127.0.0.2:${port}/postgres`,
    port,
    dir,
    async start() {
      await pgCtl(["-w", "-t", "30", "start"]);
      up = true;
    },
    async stop(mode = "fast") {
      await pgCtl(["-w", "-t", "30", "-m", mode, "stop"]);
      up = false;
    },
    async restart(mode = "fast") {
      await pgCtl(["-w", "-t", "30", "-m", mode, "restart"]);
      up = true;
    },
    async destroy() {
      if (up) await cluster.stop("immediate").catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      held.close();
    },
    [Symbol.asyncDispose]: () => cluster.destroy(),
  };
  try {
    await asPostgres("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}
