import { seg, type Transport } from "./transport.ts";

const LONG_MS = 10 * 60_000;

/**
 * A tar stream of `path` in the container. Streamed, never buffered: a workspace can be
 * gigabytes. The deadline (default 10 min) spans the whole read, so consume it promptly or
 * cancel it.
 */
export async function getArchive(
  t: Transport,
  id: string,
  path: string,
  opts: { timeoutMs?: number } = {},
): Promise<ReadableStream<Uint8Array>> {
  const { body } = await t.stream(`get archive ${path}`, "GET", `/containers/${seg(id)}/archive`, {
    query: { path },
    timeoutMs: opts.timeoutMs ?? LONG_MS,
  });
  return body;
}

/** Unpacks a tar into directory `path` of the container (which must exist). */
export async function putArchive(
  t: Transport,
  id: string,
  path: string,
  body: ReadableStream<Uint8Array> | Uint8Array,
  opts: { timeoutMs?: number } = {},
): Promise<void> {
  await t.expect(`put archive ${path}`, "PUT", `/containers/${seg(id)}/archive`, {
    query: { path },
    body,
    headers: { "Content-Type": "application/x-tar" },
    timeoutMs: opts.timeoutMs ?? LONG_MS,
  });
}
