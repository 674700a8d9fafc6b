/**
 * The container engine as the reliability tests need it: a proxy that can hold one call
 * (so a test kills the server at a moment it chose), a proxy whose socket can vanish, and
 * an inventory of what an installation left in the engine and on the host.
 */
import { DockerClient } from "@/infra/docker/mod.ts";
import type { NetworkInfo } from "@/infra/docker/types.ts";
import { setDirectEgress } from "@/infra/network/firewall.ts";
import {
  containerNameOf,
  installationLabel,
  networkNameOf,
  projectLabel,
} from "@/projects/rows.ts";
import { engineSocketPath } from "@/tests/helpers/engine.ts";
import {
  idsIn,
  removeWorkspaceIn,
  staleDirectEgress,
  unmountAllUnder,
  workspaceLeftovers,
} from "./workspace.ts";

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
export class EngineGate implements AsyncDisposable {
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

  /** close(), at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/**
 * A byte-level unix socket proxy to the engine (so hijacked exec streams work too) whose
 * socket can disappear: down() closes the listener, cuts every open connection and removes
 * the socket file; up() puts it back at the same path.
 */
export class VanishingSocket implements AsyncDisposable {
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

  /** close(), at the end of an `await using` scope. */
  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

export interface Leftovers {
  /** Containers labelled with the installation whose project has no row, or named after one. */
  orphanContainers: string[];
  /** Project networks (`pomodex-net-<id>`) of projects that have no row. */
  orphanNetworks: string[];
  /** Workspace images and mount-point directories of projects that have no row. */
  orphanWorkspaces: string[];
  /** Workspace mounts of projects that have no row. */
  orphanMounts: string[];
  /** Loop devices still backed by the workspace image of a project that has no row. */
  orphanLoops: string[];
  /** Subnets still let out directly by the firewall whose network is gone. */
  orphanDirectEgress: string[];
  /** Snapshot images of projects that are gone. */
  orphanImages: string[];
}

export const NO_LEFTOVERS: Leftovers = {
  orphanContainers: [],
  orphanNetworks: [],
  orphanWorkspaces: [],
  orphanMounts: [],
  orphanLoops: [],
  orphanDirectEgress: [],
  orphanImages: [],
};

export interface InstallationPlaces {
  /** The WORKSPACE_DIR every instance of the installation uses. */
  workspaceDir: string;
  /** SANDBOX_SUBNET_POOL, for the direct-egress check (none: not checked). */
  subnetPool?: string;
  registries?: string[];
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
 * What the engine and the host hold for this installation that no project row accounts for:
 * containers, project networks, workspace images, their mounts and loop devices, direct
 * egress of gone networks, snapshot images. `everIds`: every project id the installation
 * ever had (e.g. from the audit log), so that things named after a deleted project are found
 * even without their labels.
 */
export async function leftovers(
  engine: DockerClient,
  installationId: string,
  liveIds: Set<string>,
  everIds: Iterable<string>,
  places: InstallationPlaces,
): Promise<Leftovers> {
  const ours = { [installationLabel]: installationId };
  const containers = await engine.listContainers({ all: true, labels: ours });
  const networks = (await engine.listNetworks({ labels: ours }))
    .filter((n) => n.Labels?.[installationLabel] === installationId);
  const orphanContainers = containers.filter((c) => !liveIds.has(c.Labels?.[projectLabel] ?? ""))
    .map((c) => `${c.Names?.[0] ?? c.Id} (${c.State})`);
  const orphanNetworks = networks.filter((n) => !liveIds.has(n.Labels?.[projectLabel] ?? ""))
    .map((n) => n.Name);
  const orphanImages: string[] = [];
  for (const id of new Set(everIds)) {
    if (liveIds.has(id)) continue;
    orphanImages.push(...await snapshotImagesOf(engine, id, places.registries));
    // By name too, in case one was made without its labels.
    const c = await engine.inspectContainer(containerNameOf(id));
    if (c && !orphanContainers.some((n) => n.includes(id))) {
      orphanContainers.push(`${containerNameOf(id)} (${c.State.Status})`);
    }
    const net = await engine.inspectNetwork(networkNameOf(id));
    if (net && !orphanNetworks.includes(net.Name)) orphanNetworks.push(net.Name);
  }
  const ws = await workspaceLeftovers(places.workspaceDir, liveIds);
  let orphanDirectEgress: string[] = [];
  if (places.subnetPool) {
    const subnets = new Set(
      (await engine.listNetworks()).flatMap((n) => n.IPAM?.Config ?? []).map((c) => c.Subnet)
        .filter((s): s is string => !!s),
    );
    orphanDirectEgress = await staleDirectEgress(places.subnetPool, subnets);
  }
  return {
    orphanContainers,
    orphanNetworks,
    ...ws,
    orphanDirectEgress,
    orphanImages,
  };
}

/**
 * Removes every container, project network, workspace (mounts first) and snapshot image of
 * the installation and the ids, and takes the removed networks' subnets (and, given the
 * pool, any of its subnets whose network is gone) out of the firewall's direct-egress set.
 * Returns how many things it removed.
 */
export async function removeEverything(
  engine: DockerClient,
  installationId: string | null,
  ids: Iterable<string>,
  places: Partial<InstallationPlaces> = {},
): Promise<number> {
  let removed = 0;
  const all = new Set(ids);
  if (places.workspaceDir) { for (const id of await idsIn(places.workspaceDir)) all.add(id); }
  const networks = new Map<string, NetworkInfo>();
  if (installationId) {
    const ours = { [installationLabel]: installationId };
    for (const c of await engine.listContainers({ all: true, labels: ours }).catch(() => [])) {
      const id = c.Labels?.[projectLabel];
      if (id) all.add(id);
      if (await engine.removeContainer(c.Id, { force: true }).catch(() => false)) removed++;
    }
    for (const n of await engine.listNetworks({ labels: ours }).catch(() => [])) {
      if (n.Labels?.[installationLabel] !== installationId) continue;
      const id = n.Labels?.[projectLabel];
      if (id) all.add(id);
      networks.set(n.Name, n);
    }
  }
  for (const id of all) {
    if (await engine.removeContainer(containerNameOf(id), { force: true }).catch(() => false)) {
      removed++;
    }
    const net = await engine.inspectNetwork(networkNameOf(id)).catch(() => null);
    if (net) networks.set(net.Name, net);
  }
  for (const net of networks.values()) {
    if (await engine.removeNetwork(net.Name).catch(() => false)) removed++;
    for (const c of net.IPAM?.Config ?? []) {
      if (c.Subnet) await setDirectEgress(c.Subnet, false).catch(() => {});
    }
  }
  for (const id of all) {
    if (places.workspaceDir && await removeWorkspaceIn(places.workspaceDir, id)) removed++;
    for (const ref of await snapshotImagesOf(engine, id, places.registries).catch(() => [])) {
      if (await engine.removeImage(ref, { force: true }).catch(() => false)) removed++;
    }
  }
  if (places.workspaceDir) await unmountAllUnder(places.workspaceDir);
  if (places.subnetPool) {
    // Direct egress left of a network already gone (a delete interrupted in between).
    const subnets = new Set(
      (await engine.listNetworks().catch(() => [])).flatMap((n) => n.IPAM?.Config ?? [])
        .map((c) => c.Subnet).filter((s): s is string => !!s),
    );
    for (const subnet of await staleDirectEgress(places.subnetPool, subnets)) {
      if (await setDirectEgress(subnet, false).then(() => true, () => false)) removed++;
    }
  }
  return removed;
}

/**
 * A client of the run's engine that `using` closes, made without asking the engine anything
 * (requireEngine in tests/helpers/engine.ts pings and negotiates first): for a teardown that
 * must go on to the database and the directories even when the engine does not answer.
 */
export function newEngineClient(): DockerClient & Disposable {
  const client = new DockerClient({ socketPath: engineSocketPath() });
  return Object.assign(client, { [Symbol.dispose]: () => client.close() });
}
