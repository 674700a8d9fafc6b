import { engineMessageOf, errorFromStatus } from "./errors.ts";
import { seg, type Transport } from "./transport.ts";
import type { VolumeInfo } from "./types.ts";

/** An empty value matches any value: "has this label". */
export function labelFilters(labels?: Record<string, string>): string | undefined {
  const entries = Object.entries(labels ?? {});
  if (!entries.length) return undefined;
  return JSON.stringify({ label: entries.map(([k, v]) => v === "" ? k : `${k}=${v}`) });
}

/** Idempotent: an existing volume of that name is returned as it is (labels untouched). */
export async function createVolume(
  t: Transport,
  name: string,
  labels: Record<string, string> = {},
): Promise<VolumeInfo> {
  const op = `create volume ${name}`;
  const r = await t.send(op, "POST", "/volumes/create", { json: { Name: name, Labels: labels } });
  if (r.status === 409) {
    const existing = await inspectVolume(t, name);
    if (existing) return existing;
  }
  if (r.status >= 300) {
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }
  return JSON.parse(r.text) as VolumeInfo;
}

export function inspectVolume(t: Transport, name: string): Promise<VolumeInfo | null> {
  return t.jsonOrNull<VolumeInfo>(`inspect volume ${name}`, "GET", `/volumes/${seg(name)}`);
}

export async function removeVolume(
  t: Transport,
  name: string,
  opts: { force?: boolean } = {},
): Promise<boolean> {
  const op = `remove volume ${name}`;
  const r = await t.send(op, "DELETE", `/volumes/${seg(name)}`, { query: { force: opts.force } });
  if (r.status === 404) return false;
  if (r.status >= 300) {
    throw errorFromStatus(r.status, op, engineMessageOf(r.text, `HTTP ${r.status}`));
  }
  return true;
}

export async function listVolumes(
  t: Transport,
  opts: { label?: Record<string, string> } = {},
): Promise<VolumeInfo[]> {
  const r = await t.json<{ Volumes: VolumeInfo[] | null }>("list volumes", "GET", "/volumes", {
    query: { filters: labelFilters(opts.label) },
  });
  return r.Volumes ?? [];
}
