/** Most bytes read of one TCP table: a sandbox with a huge one cannot grow the API's memory. */
export const TCP_TABLE_CAP_BYTES = 1024 * 1024;

/**
 * The TCP tables (IPv4 then IPv6) of the network namespace a process lives in, read from the
 * host's /proc. Nothing runs inside the sandbox, so its owner cannot replace what answers;
 * each table is cut at `capBytes`. A missing IPv6 table (no IPv6 in the namespace) is empty.
 */
export async function readTcpTables(
  pid: number,
  capBytes: number = TCP_TABLE_CAP_BYTES,
): Promise<string> {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no such process: ${pid}`);
  const v4 = await readCapped(`/proc/${pid}/net/tcp`, capBytes);
  const v6 = await readCapped(`/proc/${pid}/net/tcp6`, capBytes).catch((err) => {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  });
  return `${v4}\n${v6}`;
}

async function readCapped(path: string, capBytes: number): Promise<string> {
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(capBytes);
    let filled = 0;
    while (filled < capBytes) {
      const n = await file.read(buf.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    // A cut line at the end is dropped rather than misread.
    const text = new TextDecoder().decode(buf.subarray(0, filled));
    return filled < capBytes ? text : text.slice(0, text.lastIndexOf("\n") + 1);
  } finally {
    file.close();
  }
}
