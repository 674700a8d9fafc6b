import { engineMessageOf, errorFromStatus } from "./errors.ts";
import { envArray } from "./exec.ts";
import { seg, type Transport } from "./transport.ts";
import { labelFilters } from "./volumes.ts";
import type { ContainerInfo, ContainerSpec, ContainerSummary } from "./types.ts";

export async function createContainer(
  t: Transport,
  name: string,
  spec: ContainerSpec,
): Promise<{ id: string; warnings: string[] }> {
  const body = { ...spec, Env: spec.Env ? envArray(spec.Env) : undefined };
  const r = await t.json<{ Id: string; Warnings?: string[] | null }>(
    `create container ${name}`,
    "POST",
    "/containers/create",
    { query: { name }, json: body },
  );
  return { id: r.Id, warnings: r.Warnings ?? [] };
}

/** 304 means it already runs: fine for an idempotent start. */
export async function startContainer(t: Transport, id: string): Promise<void> {
  await t.expect(`start ${id}`, "POST", `/containers/${seg(id)}/start`, {}, [304]);
}

/** 304 means it was already stopped. The HTTP deadline covers the engine's grace period. */
export async function stopContainer(
  t: Transport,
  id: string,
  opts: { timeoutSeconds?: number } = {},
): Promise<void> {
  const grace = opts.timeoutSeconds ?? 10;
  await t.expect(`stop ${id}`, "POST", `/containers/${seg(id)}/stop`, {
    query: { t: grace },
    timeoutMs: t.timeoutMs + grace * 1000,
  }, [304]);
}

/**
 * Throws status 409 when the container is not running, as Docker does; Podman answers 500
 * "container state improper" for that, which we turn into the same 409.
 */
export async function killContainer(t: Transport, id: string, signal?: string): Promise<void> {
  const op = `kill ${id}`;
  const r = await t.send(op, "POST", `/containers/${seg(id)}/kill`, { query: { signal } });
  if (r.status < 300) return;
  const message = engineMessageOf(r.text, `HTTP ${r.status}`);
  const notRunning = r.status === 500 && /state improper|not running/i.test(message);
  throw errorFromStatus(notRunning ? 409 : r.status, op, message);
}

/** False when there was nothing to remove. */
export async function removeContainer(
  t: Transport,
  id: string,
  opts: { force?: boolean; volumes?: boolean } = {},
): Promise<boolean> {
  const op = `remove container ${id}`;
  const r = await t.send(op, "DELETE", `/containers/${seg(id)}`, {
    query: { force: opts.force, v: opts.volumes },
  });
  if (r.status === 404) return false;
  if (r.status >= 300) {
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }
  return true;
}

export function inspectContainer(
  t: Transport,
  id: string,
  opts: { size?: boolean } = {},
): Promise<ContainerInfo | null> {
  return t.jsonOrNull<ContainerInfo>(`inspect ${id}`, "GET", `/containers/${seg(id)}/json`, {
    query: { size: opts.size || undefined },
  });
}

export async function listContainers(
  t: Transport,
  opts: { all?: boolean; labels?: Record<string, string> } = {},
): Promise<ContainerSummary[]> {
  return await t.json<ContainerSummary[]>("list containers", "GET", "/containers/json", {
    query: { all: opts.all, filters: labelFilters(opts.labels) },
  });
}

/** The host port published for `port` ("22/tcp"), or null when it is not published. */
export function hostPortOf(info: ContainerInfo | null, port: string): number | null {
  const bindings = info?.NetworkSettings?.Ports?.[port] ?? [];
  for (const b of bindings) {
    const n = Number(b.HostPort);
    if (b.HostPort && Number.isInteger(n) && n > 0) return n;
  }
  return null;
}
