/**
 * The container engine as the reliability tests need it: a proxy that can hold one call
 * (so a test kills the server at a moment it chose), a proxy whose socket can vanish, and
 * an inventory of what an installation left in the engine.
 */
import { DockerClient } from "../../lib/docker/mod.ts";
import {
  containerNameOf,
  installationLabel,
  projectLabel,
  volumeNameOf,
} from "../../lib/projects/rows.ts";
import { engineSocketPath } from "../../tests/helpers/engine.ts";

export { engineSocketPath };

export interface Hold {
  /** Resolves when a matching call reached the proxy (phase "before") or the engine answered ("after"). */
  reached: Promise<string>;
  /** Lets the held call go on (forwarded, or its answer delivered). */
  release(): void;
  /** Answers the held call 503 without forwarding it (phase "before" only). */
  drop(): void;
}

/** Decides whether a call is the one to hold: method, path without the version prefix, query. */
export type CallMatcher = (method: string, path: string, query: URLSearchParams) => boolean;

interface HoldEntry {
  match: CallMatcher;
  phase: "before" | "after";
  taken: boolean;
  reach: (path: string) => void;
  gate: Promise<"release" | "drop">;
  open: (how: "release" | "drop") => void;
}

/**
 * A unix-socket HTTP proxy in front of the engine. `hold()` stops the next call that
 * matches, before it reaches the engine or after the engine answered, until released;
 * everything else passes through. (Hijacked exec streams do not pass: fine for the
 * create/stop/delete paths, which use none.)
 */
export class EngineGate {
  readonly socket = `/tmp/pomodex-rel-gate-${crypto.randomUUID().slice(0, 8)}.sock`;
  readonly dockerHost = `unix://${this.socket}`;
  /** Every call seen, "METHOD /path". */
  readonly calls: string[] = [];
  /** Containers created through the proxy: name → id. */
  readonly created = new Map<string, string>();
  #holds: HoldEntry[] = [];
  #upstream = Deno.createHttpClient({ proxy: { transport: "unix", path: engineSocketPath() } });
  #server: Deno.HttpServer;

  constructor() {
    this.#server = Deno.serve(
      { path: this.socket, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  hold(match: CallMatcher, phase: "before" | "after" = "before"): Hold {
    let reach!: (p: string) => void;
    let open!: (how: "release" | "drop") => void;
    const reached = new Promise<string>((r) => reach = r);
    const gate = new Promise<"release" | "drop">((r) => open = r);
    this.#holds.push({ match, phase, taken: false, reach, gate, open });
    return { reached, release: () => open("release"), drop: () => open("drop") };
  }

  /** Lets every held call through (or drops them) and forgets every hold. */
  releaseAll(how: "release" | "drop" = "drop") {
    for (const h of this.#holds) h.open(how);
    this.#holds = [];
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/v[\d.]+/, "");
    this.calls.push(`${req.method} ${path}`);
    const entry = this.#holds.find((h) => !h.taken && h.match(req.method, path, url.searchParams));
    if (entry) entry.taken = true;
    if (entry?.phase === "before") {
      entry.reach(`${req.method} ${path}`);
      if ((await entry.gate) === "drop") {
        return Response.json({ message: "held call dropped by the test" }, { status: 503 });
      }
    }
    const res = await fetch(`http://docker${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      client: this.#upstream,
    });
    const isCreate = req.method === "POST" && path === "/containers/create";
    if (entry?.phase === "after" || isCreate) {
      const body = new Uint8Array(await res.arrayBuffer());
      if (isCreate && res.ok) {
        try {
          const id = JSON.parse(new TextDecoder().decode(body)).Id;
          this.created.set(url.searchParams.get("name") ?? "", id);
        } catch { /* not JSON: not ours to judge */ }
      }
      if (entry?.phase === "after") {
        entry.reach(`${req.method} ${path} -> ${res.status}`);
        await entry.gate;
      }
      const empty = [101, 204, 205, 304].includes(res.status);
      return new Response(empty ? null : body, { status: res.status, headers: res.headers });
    }
    return res;
  }

  async close() {
    this.releaseAll("drop");
    await this.#server.shutdown();
    this.#upstream.close();
    await Deno.remove(this.socket).catch(() => {});
  }
}

/**
 * A byte-level unix socket proxy to the engine (so hijacked exec streams work too) whose
 * socket can disappear: down() closes the listener, cuts every open connection and removes
 * the socket file; up() puts it back at the same path.
 */
export class VanishingSocket {
  readonly socket = `/tmp/pomodex-rel-engine-${crypto.randomUUID().slice(0, 8)}.sock`;
  readonly dockerHost = `unix://${this.socket}`;
  #listener: Deno.Listener | null = null;
  #conns = new Set<Deno.Conn>();

  constructor() {
    this.up();
  }

  get isUp() {
    return this.#listener !== null;
  }

  up() {
    if (this.#listener) return;
    const listener = Deno.listen({ transport: "unix", path: this.socket });
    this.#listener = listener;
    (async () => {
      try {
        for await (const conn of listener) this.#pipe(conn);
      } catch { /* closed */ }
    })();
  }

  async #pipe(client: Deno.Conn) {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ transport: "unix", path: engineSocketPath() });
    } catch {
      client.close();
      return;
    }
    this.#conns.add(client);
    this.#conns.add(upstream);
    const close = () => {
      for (const c of [client, upstream]) {
        this.#conns.delete(c);
        try {
          c.close();
        } catch { /* closed */ }
      }
    };
    await Promise.race([
      client.readable.pipeTo(upstream.writable, { preventClose: true }).catch(() => {}),
      upstream.readable.pipeTo(client.writable, { preventClose: true }).catch(() => {}),
    ]);
    close();
  }

  async down() {
    const l = this.#listener;
    this.#listener = null;
    try {
      l?.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    this.#conns.clear();
    await Deno.remove(this.socket).catch(() => {});
  }

  async close() {
    await this.down();
  }
}

export interface Leftovers {
  /** Containers and volumes labelled with the installation whose project has no row. */
  orphanContainers: string[];
  orphanVolumes: string[];
  /** Snapshot images of projects that are gone. */
  orphanImages: string[];
}

const snapshotRepos = (id: string, registries: string[]) => [
  `localhost/pomodex-snapshot-${id}`,
  ...registries.map((r) => `${r}/pomodex-${id}`),
];

/** Every image tag of the project's snapshot repositories, in the engine. */
export async function snapshotImagesOf(
  engine: DockerClient,
  projectId: string,
  registries: string[] = [],
): Promise<string[]> {
  const out: string[] = [];
  for (const repo of snapshotRepos(projectId, registries)) {
    for (const img of await engine.listImages(repo)) {
      out.push(...(img.RepoTags ?? []).filter((t) => t.startsWith(`${repo}:`)));
    }
  }
  return out;
}

/**
 * What the engine holds for this installation that no project row accounts for.
 * `everId`: every project id the installation ever had (e.g. from the audit log), so that
 * snapshot images of deleted projects are found too.
 */
export async function leftovers(
  engine: DockerClient,
  installationId: string,
  liveIds: Set<string>,
  everIds: Iterable<string>,
  registries: string[] = [],
): Promise<Leftovers> {
  const ours = { [installationLabel]: installationId };
  const containers = await engine.listContainers({ all: true, labels: ours });
  const volumes = (await engine.listVolumes({ label: ours }))
    .filter((v) => v.Labels?.[installationLabel] === installationId);
  const orphanContainers = containers.filter((c) => !liveIds.has(c.Labels?.[projectLabel] ?? ""))
    .map((c) => `${c.Names?.[0] ?? c.Id} (${c.State})`);
  const orphanVolumes = volumes.filter((v) => !liveIds.has(v.Labels?.[projectLabel] ?? ""))
    .map((v) => v.Name);
  const orphanImages: string[] = [];
  for (const id of new Set(everIds)) {
    if (liveIds.has(id)) continue;
    orphanImages.push(...await snapshotImagesOf(engine, id, registries));
    // By name too, in case one was made without its labels.
    const c = await engine.inspectContainer(containerNameOf(id));
    if (c && !orphanContainers.some((n) => n.includes(id))) {
      orphanContainers.push(`${containerNameOf(id)} (${c.State.Status})`);
    }
    if (await engine.inspectVolume(volumeNameOf(id)) && !orphanVolumes.includes(volumeNameOf(id))) {
      orphanVolumes.push(volumeNameOf(id));
    }
  }
  return { orphanContainers, orphanVolumes, orphanImages };
}

/** Removes every container, volume and snapshot image of the installation and the ids. */
export async function removeEverything(
  engine: DockerClient,
  installationId: string | null,
  ids: Iterable<string>,
  registries: string[] = [],
): Promise<number> {
  let removed = 0;
  const all = new Set(ids);
  if (installationId) {
    const ours = { [installationLabel]: installationId };
    for (const c of await engine.listContainers({ all: true, labels: ours }).catch(() => [])) {
      const id = c.Labels?.[projectLabel];
      if (id) all.add(id);
      if (await engine.removeContainer(c.Id, { force: true }).catch(() => false)) removed++;
    }
    for (const v of await engine.listVolumes({ label: ours }).catch(() => [])) {
      if (v.Labels?.[installationLabel] !== installationId) continue;
      const id = v.Labels?.[projectLabel];
      if (id) all.add(id);
      if (await engine.removeVolume(v.Name, { force: true }).catch(() => false)) removed++;
    }
  }
  for (const id of all) {
    if (await engine.removeContainer(containerNameOf(id), { force: true }).catch(() => false)) {
      removed++;
    }
    if (await engine.removeVolume(volumeNameOf(id), { force: true }).catch(() => false)) {
      removed++;
    }
    for (const ref of await snapshotImagesOf(engine, id, registries).catch(() => [])) {
      if (await engine.removeImage(ref, { force: true }).catch(() => false)) removed++;
    }
  }
  return removed;
}

export function newEngineClient(): DockerClient {
  return new DockerClient({ socketPath: engineSocketPath() });
}
