import { DockerError } from "./errors.ts";
import { getArchive, putArchive } from "./archive.ts";
import {
  createContainer,
  hostPortOf,
  inspectContainer,
  killContainer,
  listContainers,
  removeContainer,
  startContainer,
  stopContainer,
} from "./containers.ts";
import { exec, signalMarked } from "./exec.ts";
import {
  commitContainer,
  type CommitOptions,
  inspectImage,
  listImages,
  pullImage,
  pushImage,
  removeImage,
  tagImage,
  type TransferOptions,
} from "./images.ts";
import {
  compareApiVersions,
  MAX_API_VERSION,
  Transport,
  type TransportOptions,
} from "./transport.ts";
import { execTty } from "./tty.ts";
import { createVolume, inspectVolume, listVolumes, removeVolume } from "./volumes.ts";
import { createNetwork, inspectNetwork, listNetworks, removeNetwork } from "./networks.ts";
import type {
  ContainerInfo,
  ContainerSpec,
  ContainerSummary,
  EngineInfo,
  ExecOptions,
  ExecResult,
  ImageInfo,
  ImageSummary,
  NetworkInfo,
  NetworkSpec,
  TtyOptions,
  TtySession,
  VersionInfo,
  VolumeInfo,
} from "./types.ts";

export type DockerClientOptions = TransportOptions;

/**
 * The engine's socket: DOCKER_HOST's value when the caller passes one, else the first of
 * the usual places that exists. When none does we still return Docker's default, so the
 * first call fails with "unreachable at /var/run/docker.sock" rather than startup failing.
 * The caller reads the environment and passes values in; this module reads none.
 */
export function findDockerSocket(dockerHost?: string, xdgRuntimeDir?: string): string {
  if (dockerHost) return socketPathOf(dockerHost);
  const candidates = ["/var/run/docker.sock", "/run/podman/podman.sock"];
  if (xdgRuntimeDir) candidates.push(`${xdgRuntimeDir}/podman/podman.sock`);
  for (const path of candidates) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // try the next one
    }
  }
  return candidates[0];
}

function socketPathOf(dockerHost: string): string {
  if (dockerHost.startsWith("unix://")) return dockerHost.slice("unix://".length);
  if (dockerHost.startsWith("/")) return dockerHost;
  throw new DockerError(
    0,
    "connect",
    `unsupported DOCKER_HOST "${dockerHost}": only unix:// sockets`,
  );
}

/**
 * A thin, typed client for the Docker Engine API (and Podman's compatible one) over a unix
 * socket. Every call has a deadline; every failure is a DockerError. Methods return the
 * engine's own shapes (see types.ts), or null / false where "absent" is a normal answer.
 */
export class DockerClient {
  #t: Transport;

  constructor(opts: DockerClientOptions) {
    this.#t = new Transport(opts);
  }

  static fromDockerHost(dockerHost: string, opts: Omit<DockerClientOptions, "socketPath"> = {}) {
    return new DockerClient({ ...opts, socketPath: socketPathOf(dockerHost) });
  }

  get socketPath(): string {
    return this.#t.socketPath;
  }

  /** The version prefix in use, e.g. "v1.41". */
  get apiVersion(): string {
    return `v${this.#t.apiVersion}`;
  }

  /**
   * Picks min(engine's ApiVersion, 1.41): older engines get what they speak, newer ones the
   * version our types were written against. If the engine no longer accepts that (its
   * MinAPIVersion is higher, as on recent Docker), we use its minimum: the fields we use
   * have not changed since. Call once at startup; without it we speak 1.41.
   */
  async negotiate(): Promise<string> {
    const v = await this.version();
    let chosen = MAX_API_VERSION;
    if (v.ApiVersion && compareApiVersions(v.ApiVersion, chosen) < 0) chosen = v.ApiVersion;
    if (v.MinAPIVersion && compareApiVersions(chosen, v.MinAPIVersion) < 0) {
      chosen = v.MinAPIVersion;
    }
    this.#t.apiVersion = chosen.replace(/^v/, "");
    return this.apiVersion;
  }

  /**
   * negotiate(), retried every `retryMs` while the engine does not answer (it may start after
   * us): resolves with the version, or null once `signal` aborts.
   */
  async negotiateWhenReachable(opts: {
    signal: AbortSignal;
    retryMs?: number;
    onRetry?: (err: unknown) => void;
  }): Promise<string | null> {
    while (!opts.signal.aborted) {
      try {
        return await this.negotiate();
      } catch (err) {
        if (opts.signal.aborted) break;
        opts.onRetry?.(err);
        await abortableSleep(opts.retryMs ?? 10_000, opts.signal);
      }
    }
    return null;
  }

  close(): void {
    this.#t.close();
  }

  // --- system

  version(): Promise<VersionInfo> {
    return this.#t.json<VersionInfo>("version", "GET", "/version", { unversioned: true });
  }

  /** Resolves when the engine answers; throws DockerError (status 0 if unreachable). */
  async ping(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.#t.expect("ping", "GET", "/_ping", { unversioned: true, timeoutMs: opts.timeoutMs });
  }

  info(): Promise<EngineInfo> {
    return this.#t.json<EngineInfo>("info", "GET", "/info");
  }

  // --- networks

  createNetwork(spec: NetworkSpec): Promise<{ id: string }> {
    return createNetwork(this.#t, spec);
  }
  inspectNetwork(name: string): Promise<NetworkInfo | null> {
    return inspectNetwork(this.#t, name);
  }
  removeNetwork(name: string): Promise<boolean> {
    return removeNetwork(this.#t, name);
  }
  listNetworks(opts?: { labels?: Record<string, string> }): Promise<NetworkInfo[]> {
    return listNetworks(this.#t, opts);
  }

  // --- images

  inspectImage(ref: string): Promise<ImageInfo | null> {
    return inspectImage(this.#t, ref);
  }
  listImages(reference: string): Promise<ImageSummary[]> {
    return listImages(this.#t, reference);
  }
  pullImage(ref: string, opts?: TransferOptions): Promise<void> {
    return pullImage(this.#t, ref, opts);
  }
  pushImage(ref: string, opts?: TransferOptions): Promise<void> {
    return pushImage(this.#t, ref, opts);
  }
  tagImage(source: string, repo: string, tag: string): Promise<void> {
    return tagImage(this.#t, source, repo, tag);
  }
  removeImage(ref: string, opts?: { force?: boolean; noprune?: boolean }): Promise<boolean> {
    return removeImage(this.#t, ref, opts);
  }
  commitContainer(id: string, opts: CommitOptions): Promise<{ id: string }> {
    return commitContainer(this.#t, id, opts);
  }

  // --- volumes

  createVolume(name: string, labels?: Record<string, string>): Promise<VolumeInfo> {
    return createVolume(this.#t, name, labels);
  }
  inspectVolume(name: string): Promise<VolumeInfo | null> {
    return inspectVolume(this.#t, name);
  }
  removeVolume(name: string, opts?: { force?: boolean }): Promise<boolean> {
    return removeVolume(this.#t, name, opts);
  }
  listVolumes(opts?: { label?: Record<string, string> }): Promise<VolumeInfo[]> {
    return listVolumes(this.#t, opts);
  }

  // --- containers

  createContainer(name: string, spec: ContainerSpec): Promise<{ id: string; warnings: string[] }> {
    return createContainer(this.#t, name, spec);
  }
  startContainer(id: string): Promise<void> {
    return startContainer(this.#t, id);
  }
  stopContainer(id: string, opts?: { timeoutSeconds?: number }): Promise<void> {
    return stopContainer(this.#t, id, opts);
  }
  killContainer(id: string, signal?: string): Promise<void> {
    return killContainer(this.#t, id, signal);
  }
  removeContainer(id: string, opts?: { force?: boolean; volumes?: boolean }): Promise<boolean> {
    return removeContainer(this.#t, id, opts);
  }
  /** `size` adds SizeRw, the container's own layer (the engine walks it: not for hot paths). */
  inspectContainer(id: string, opts?: { size?: boolean }): Promise<ContainerInfo | null> {
    return inspectContainer(this.#t, id, opts);
  }
  listContainers(
    opts?: { all?: boolean; labels?: Record<string, string> },
  ): Promise<ContainerSummary[]> {
    return listContainers(this.#t, opts);
  }
  /** The published host port for e.g. "22/tcp", or null. */
  hostPortOf(info: ContainerInfo | null, port: string): number | null {
    return hostPortOf(info, port);
  }

  // --- exec

  /** Runs `cmd` to completion without a TTY; stdout and stderr come back separately. */
  exec(containerId: string, cmd: string[], opts?: ExecOptions): Promise<ExecResult> {
    return exec(this.#t, containerId, cmd, opts);
  }
  /**
   * Signals every process whose environment holds the `marker` line ("NAME=value"), found
   * by scanning /proc as each of `users`; returns how many were signalled.
   */
  signalMarked(containerId: string, marker: string, signal: "HUP" | "KILL" | "0", users: string[]) {
    return signalMarked(this.#t, containerId, marker, signal, users);
  }
  /** An interactive process on a pseudo-terminal (see tty.ts for how close() cleans up). */
  execTty(containerId: string, cmd: string[], opts: TtyOptions): Promise<TtySession> {
    return execTty(this.#t, containerId, cmd, opts);
  }

  // --- archives

  getArchive(
    id: string,
    path: string,
    opts?: { timeoutMs?: number },
  ): Promise<ReadableStream<Uint8Array>> {
    return getArchive(this.#t, id, path, opts);
  }
  putArchive(
    id: string,
    path: string,
    body: ReadableStream<Uint8Array> | Uint8Array,
    opts?: { timeoutMs?: number },
  ): Promise<void> {
    return putArchive(this.#t, id, path, body, opts);
  }
}

export { hostPortOf };

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
