// Stop (backup + snapshot + push) and start (pull + run until SSH answers) of a project with
// 100 MB of workspace data, next to the bare engine doing commit+push and pull+run of a
// container in the same shape (its own network, its ext4 workspace unmounted at the stop and
// mounted again at the start: bench/bare.ts), in the same run.
import type { DockerClient } from "@/infra/docker/mod.ts";
import { RegistryClient } from "@/infra/registry/client.ts";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { sshRun } from "@/tests/helpers/ssh.ts";
import { requireEngine } from "@/tests/helpers/engine.ts";
import { sandboxImage, testRegistry } from "@/tests/helpers/env.ts";
import { signUp } from "@/tests/helpers/users.ts";
import { BareHost, runBareSandbox } from "./bare.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, row } from "./stats.ts";
import { percentile } from "@/tests/helpers/stats.ts";

/** Even, so that each side goes first as often as the other. */
const ROUNDS = 4;
const FILL = "head -c 104857600 /dev/urandom > ~/data.bin";

export async function benchSnapshots(): Promise<{ rows: BenchRow[] }> {
  const registry = testRegistry(), image = sandboxImage();
  // Closed in reverse: the bare sandbox, the bare floors' host, the engine client, the server.
  await using server = await startBenchServer("snapshots", { REGISTRY: registry });
  using engine = await requireEngine();
  const headers = (await signUp(server.url)).auth;
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...headers, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  await using host = await BareHost.open(engine);
  await using bare = await bareSandbox(engine, host, { registry, image });
  const project = await api("POST", "/projects", { name: "bench-snapshots" });
  await sshRun(project, project.ssh_private_key, FILL);
  await bare.exec(FILL);
  const stop: number[] = [],
    start: number[] = [],
    commitPush: number[] = [],
    pullRun: number[] = [],
    archive: number[] = [];
  const pomodex = async () => {
    let t = performance.now();
    await api("POST", `/projects/${project.id}/stop`);
    stop.push(performance.now() - t);
    for (const img of await engine.listImages(`${registry}/pomodex-${project.id}`)) {
      for (const ref of img.RepoTags ?? []) await engine.removeImage(ref, { force: true });
    }
    t = performance.now();
    const started = await api("POST", `/projects/${project.id}/start`);
    const ssh = await sshRun(started, project.ssh_private_key, "true");
    start.push(performance.now() - t);
    if (ssh.code !== 0) throw new Error(ssh.stderr);
  };
  const floor = async (i: number) => {
    archive.push(await bare.archiveWorkspace());
    commitPush.push(await bare.commitPush(i));
    pullRun.push(await bare.pullRun(i));
  };
  // Pomodex and the bare engine take turns going first: whichever pushes first in a round
  // finds the registry (and the engine's caches) colder than the one after it.
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      await pomodex();
      await floor(i);
    } else {
      await floor(i);
      await pomodex();
    }
  }
  await api("DELETE", `/projects/${project.id}`);
  const p = (xs: number[]) => percentile(xs, 50);
  return {
    rows: [
      // The stop runs the workspace backup and the commit + push side by side, so its
      // floor is the slower of the two; the second row compares with commit + push alone.
      row(
        `stop with 100 MB workspace (backup beside commit + push), p50 of ${ROUNDS}`,
        p(stop),
        "ms",
        Math.max(p(commitPush), p(archive)),
      ),
      row(
        "stop, vs bare commit + push alone (no workspace backup)",
        p(stop),
        "ms",
        p(commitPush),
      ),
      row("bare engine commit + push", p(commitPush), "ms"),
      row("bare engine archive of the workspace, gzipped to disk", p(archive), "ms"),
      row(`start (pull + run until SSH login), p50 of ${ROUNDS}`, p(start), "ms", p(pullRun)),
      row("bare engine pull + run until SSH login (floor)", p(pullRun), "ms"),
    ],
  };
}

/**
 * A container of the sandbox image on its own network with its ext4 workspace, handled with
 * plain engine calls (and mount) only.
 */
async function bareSandbox(
  engine: DockerClient,
  host: BareHost,
  { registry, image }: { registry: string; image: string },
) {
  const name = `pomodex-bench-${crypto.randomUUID().slice(0, 8)}`;
  const repo = `${registry}/${name}`;
  const keys = await generateSshKeyPair("bench");
  const iso = await host.isolate(name);
  let current = "";
  const run = async (ref: string) => {
    current = (await runBareSandbox(engine, name, ref, keys, iso)).id;
  };
  await run(image);
  const sandbox = {
    async exec(command: string) {
      await engine.exec(current, ["su", "agent", "-c", command], { timeoutMs: 120_000 });
    },
    /** What a backup must at least do: stream the workspace out and gzip it. */
    async archiveWorkspace() {
      const t = performance.now();
      const file = await Deno.makeTempFile();
      const tar = await engine.getArchive(current, "/home/agent");
      await tar.pipeThrough(
        new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
      ).pipeTo((await Deno.open(file, { write: true })).writable);
      const elapsed = performance.now() - t;
      await Deno.remove(file);
      return elapsed;
    },
    async commitPush(round: number) {
      const t = performance.now();
      await engine.commitContainer(current, { repo, tag: `r${round}` });
      await engine.pushImage(`${repo}:r${round}`, { auth: { serveraddress: registry } });
      return performance.now() - t;
    },
    async pullRun(round: number) {
      // What a stop leaves: no container, the workspace kept but unmounted.
      await engine.removeContainer(current, { force: true });
      await host.unmount(iso);
      await engine.removeImage(`${repo}:r${round}`, { force: true });
      const t = performance.now();
      await engine.pullImage(`${repo}:r${round}`, { auth: { serveraddress: registry } });
      await host.mount(iso);
      await run(`${repo}:r${round}`);
      return performance.now() - t;
    },
    async close() {
      await engine.removeContainer(name, { force: true });
      await host.remove(iso);
      for (const img of await engine.listImages(repo)) {
        for (const ref of img.RepoTags ?? []) await engine.removeImage(ref, { force: true });
      }
      await new RegistryClient(registry).deleteRepository(name);
    },
    /** close(), at the end of an `await using` scope. */
    [Symbol.asyncDispose]: () => sandbox.close(),
  };
  return sandbox;
}
