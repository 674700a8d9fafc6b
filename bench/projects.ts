// Project create → first SSH login through Pomodex (with its isolation: a network of the
// project's own, an ext4 workspace, the firewall and the egress proxy), next to two floors of
// the bare engine doing the same with plain calls (bench/bare.ts): the isolated shape (own
// network, loop-mounted ext4 workspace bind-mounted, same hardening) and the plain shape from
// before isolation (default network, named volume). Alternated over the rounds, in a
// rotating order, so all three see the same machine.
import type { DockerClient } from "@/infra/docker/mod.ts";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { sshRun } from "@/tests/helpers/ssh.ts";
import { requireEngine } from "@/tests/helpers/engine.ts";
import { sandboxImage } from "@/tests/helpers/env.ts";
import { signUp } from "@/tests/helpers/users.ts";
import { BareHost, type BareIsolation, runBareSandbox } from "./bare.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, row } from "./stats.ts";
import { max, percentile } from "@/tests/helpers/stats.ts";

/** Creates of each kind; fewer than 100, so the tail reported is the max, named as such. */
const ROUNDS = Number(Deno.env.get("BENCH_CREATE_ROUNDS") ?? 30);

export interface CreateSeries {
  pomodexMs: number[];
  /** The isolated floor: own network, ext4 workspace. */
  bareIsolatedMs: number[];
  /** The floor from before isolation: default network, named volume. */
  bareMs: number[];
}

export async function benchProjects(): Promise<
  { rows: BenchRow[]; series: CreateSeries }
> {
  const image = sandboxImage();
  // Closed in reverse: the bare floors' host, the engine client, the server.
  await using server = await startBenchServer("projects");
  using engine = await requireEngine();
  await using host = await BareHost.open(engine);
  const headers = (await signUp(server.url)).auth;
  await server.db.sql`UPDATE users SET project_quota = 100`;
  const series: CreateSeries = { pomodexMs: [], bareIsolatedMs: [], bareMs: [] };
  const measures = [
    async () => series.pomodexMs.push(await pomodexCreateToSsh(server.url, headers)),
    async () => series.bareIsolatedMs.push(await bareCreateToSsh(engine, host, image)),
    async () => series.bareMs.push(await bareCreateToSsh(engine, null, image)),
  ];
  // One untimed round of each first: the engine's and the server's first create is slower.
  await pomodexCreateToSsh(server.url, headers);
  await bareCreateToSsh(engine, host, image);
  await bareCreateToSsh(engine, null, image);
  for (let i = 0; i < ROUNDS; i++) {
    for (let k = 0; k < measures.length; k++) await measures[(i + k) % measures.length]();
  }
  const p50 = (xs: number[]) => percentile(xs, 50);
  const { pomodexMs: p, bareIsolatedMs: iso, bareMs: plain } = series;
  return {
    series,
    rows: [
      row(
        `create → SSH login p50, isolated (${ROUNDS} creates), vs bare engine without isolation`,
        p50(p),
        "ms",
        p50(plain),
      ),
      row(`create → SSH login max, vs bare engine without isolation`, max(p), "ms", max(plain)),
      row(
        "create → SSH login p50, vs bare engine with the same isolation",
        p50(p),
        "ms",
        p50(iso),
      ),
      row(
        "create → SSH login max, vs bare engine with the same isolation",
        max(p),
        "ms",
        max(iso),
      ),
      row(
        "bare engine create+start → SSH login p50, own network + ext4 workspace, vs without",
        p50(iso),
        "ms",
        p50(plain),
      ),
      row(
        "bare engine create+start → SSH login max, own network + ext4 workspace, vs without",
        max(iso),
        "ms",
        max(plain),
      ),
      row(
        "bare engine create+start → SSH login p50, default network + named volume (floor)",
        p50(plain),
        "ms",
      ),
    ],
  };
}

async function pomodexCreateToSsh(url: string, headers: HeadersInit): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${url}/projects`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ name: "bench" }),
  });
  const project = await res.json();
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(project)}`);
  const ssh = await sshRun(project, project.ssh_private_key, "true");
  const elapsed = performance.now() - started;
  if (ssh.code !== 0) throw new Error(`ssh: ${ssh.stderr}`);
  const del = await fetch(`${url}/projects/${project.id}`, { method: "DELETE", headers });
  await del.body?.cancel();
  if (!del.ok) throw new Error(`delete: ${del.status}`);
  return elapsed;
}

/** `host`: the isolated shape; null: the plain one. Timed from the first engine call. */
async function bareCreateToSsh(
  engine: DockerClient,
  host: BareHost | null,
  image: string,
): Promise<number> {
  const name = `pomodex-bench-${crypto.randomUUID().slice(0, 8)}`;
  const keys = await generateSshKeyPair("bench");
  let iso: BareIsolation | undefined;
  // The container and its network and workspace (or its volume) go once the time is taken,
  // also when a step failed; their removal is not timed.
  await using cleanup = new AsyncDisposableStack();
  cleanup.defer(async () => {
    await engine.removeContainer(name, { force: true });
    if (iso) await host!.remove(iso);
    else await engine.removeVolume(name, { force: true });
  });
  const started = performance.now();
  if (host) iso = await host.isolate(name);
  else await engine.createVolume(name, { "pomodex.bench": "1" });
  await runBareSandbox(engine, name, image, keys, iso);
  return performance.now() - started;
}
