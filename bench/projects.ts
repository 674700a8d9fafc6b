// Project create → first SSH login through Pomodex, next to the bare engine doing the same
// (volume + container of the same image, same limits and port binding, start, sshd answers,
// SSH login), alternated over 20 rounds so both see the same machine.
import { DockerClient, findDockerSocket } from "../lib/docker/mod.ts";
import { generateSshKeyPair } from "../lib/projects/ssh-keys.ts";
import { sshRun } from "../tests/helpers/ssh.ts";
import { runBareSandbox } from "./bare.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, percentile, row } from "./stats.ts";

const ROUNDS = 20;
const IMAGE = Deno.env.get("SANDBOX_IMAGE") ?? "localhost/pomodex-sandbox:latest";

export interface CreateSeries {
  pomodexMs: number[];
  bareMs: number[];
}

export async function benchProjects(): Promise<
  { rows: BenchRow[]; series: CreateSeries }
> {
  const server = await startBenchServer("projects");
  const engine = new DockerClient({ socketPath: findDockerSocket(Deno.env.get("DOCKER_HOST")) });
  try {
    const headers = await authHeaders(server.url);
    await server.db.sql`UPDATE users SET project_quota = 100`;
    const series: CreateSeries = { pomodexMs: [], bareMs: [] };
    for (let i = 0; i < ROUNDS; i++) {
      series.pomodexMs.push(await pomodexCreateToSsh(server.url, headers));
      series.bareMs.push(await bareCreateToSsh(engine));
    }
    const p50 = percentile(series.pomodexMs, 50), bare50 = percentile(series.bareMs, 50);
    return {
      series,
      rows: [
        row(`create → SSH login p50 (${ROUNDS} creates)`, p50, "ms", bare50),
        row(
          `create → SSH login p99`,
          percentile(series.pomodexMs, 99),
          "ms",
          percentile(series.bareMs, 99),
        ),
        row("bare engine create+start → SSH login p50 (floor)", bare50, "ms"),
      ],
    };
  } finally {
    engine.close();
    await server.close();
  }
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
  return elapsed;
}

async function bareCreateToSsh(engine: DockerClient): Promise<number> {
  const name = `pomodex-bench-${crypto.randomUUID().slice(0, 8)}`;
  const keys = await generateSshKeyPair("bench");
  const started = performance.now();
  try {
    await engine.createVolume(name, { "pomodex.bench": "1" });
    await runBareSandbox(engine, name, IMAGE, keys);
    return performance.now() - started;
  } finally {
    await engine.removeContainer(name, { force: true });
    await engine.removeVolume(name, { force: true });
  }
}

export async function authHeaders(url: string): Promise<Record<string, string>> {
  const email = `bench-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const body = JSON.stringify({ email, password: "correct horse battery" });
  const json = { "content-type": "application/json" };
  const reg = await fetch(`${url}/auth/register`, { method: "POST", headers: json, body });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  await reg.body?.cancel();
  const login = await (await fetch(`${url}/auth/login`, { method: "POST", headers: json, body }))
    .json();
  return { authorization: `Bearer ${login.access_token}` };
}
