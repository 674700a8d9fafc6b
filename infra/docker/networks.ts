import { engineMessageOf, errorFromStatus } from "./errors.ts";
import { seg, type Transport } from "./transport.ts";
import type { NetworkInfo, NetworkSpec } from "./types.ts";
import { labelFilters } from "./volumes.ts";

/**
 * 409 (Docker) or 500 "already exists"/"already used" (Podman) when the name, subnet or
 * bridge is taken: reported as 409 either way, so callers can try another subnet.
 */
export async function createNetwork(t: Transport, spec: NetworkSpec): Promise<{ id: string }> {
  const op = `create network ${spec.Name}`;
  const r = await t.send(op, "POST", "/networks/create", {
    json: { CheckDuplicate: true, ...spec },
  });
  if (r.status < 300) return { id: (JSON.parse(r.text) as { Id: string }).Id };
  const message = engineMessageOf(r.text, `HTTP ${r.status}`);
  const taken = /already (exists|used|in use)|overlap|conflict/i.test(message);
  throw errorFromStatus(taken ? 409 : r.status, op, message);
}

export function inspectNetwork(t: Transport, name: string): Promise<NetworkInfo | null> {
  return t.jsonOrNull<NetworkInfo>(`inspect network ${name}`, "GET", `/networks/${seg(name)}`);
}

/** False when there was nothing to remove. */
export async function removeNetwork(t: Transport, name: string): Promise<boolean> {
  const op = `remove network ${name}`;
  const r = await t.send(op, "DELETE", `/networks/${seg(name)}`);
  if (r.status === 404) return false;
  if (r.status >= 300) {
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }
  return true;
}

export function listNetworks(
  t: Transport,
  opts: { labels?: Record<string, string> } = {},
): Promise<NetworkInfo[]> {
  return t.json<NetworkInfo[]>("list networks", "GET", "/networks", {
    query: { filters: labelFilters(opts.labels) },
  });
}
