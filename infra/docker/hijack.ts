import { DockerError, engineMessageOf, errorFromStatus } from "./errors.ts";
import { concatBytes } from "@/core/bytes.ts";
import type { Transport } from "./transport.ts";

/**
 * A connection the engine has taken over ("hijacked") after answering an upgrade: the
 * HTTP exchange is over and the socket carries the process's raw stdio both ways. fetch
 * cannot do this (it owns the socket), so we speak the one request ourselves.
 */
export interface Hijacked {
  conn: Deno.UnixConn;
  /** Everything the engine sends after its 101 header, including bytes that came with it. */
  readable: ReadableStream<Uint8Array>;
  write(bytes: Uint8Array): Promise<void>;
  /** Half-close: the process sees EOF on stdin, we keep reading its output. */
  closeWrite(): Promise<void>;
  close(): void;
}

const HEADER_END = new Uint8Array([13, 10, 13, 10]);
const MAX_HEADER = 64 * 1024;

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/**
 * POSTs `path` with a JSON body asking for an upgrade, and returns the raw stream. The
 * header wait is bounded by `timeoutMs`; the stream itself has no deadline (a terminal may
 * stay open for hours), so callers bound it as they need.
 */
export async function hijack(
  t: Transport,
  op: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<Hijacked> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: t.socketPath });
  } catch (err) {
    throw t.transportError(op, err);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }, timeoutMs);

  let leftover: Uint8Array;
  try {
    const payload = new TextEncoder().encode(JSON.stringify(body));
    const head = `POST ${path} HTTP/1.1\r\n` +
      "Host: docker\r\n" +
      "Content-Type: application/json\r\n" +
      "Connection: Upgrade\r\n" +
      "Upgrade: tcp\r\n" +
      `Content-Length: ${payload.length}\r\n\r\n`;
    await writeAll(conn, concatBytes(new TextEncoder().encode(head), payload));

    // Read until the blank line; what follows it in the same read is already stream data.
    let buf: Uint8Array = new Uint8Array(0);
    let end = -1;
    const chunk = new Uint8Array(16 * 1024);
    while (end < 0) {
      const n = await conn.read(chunk);
      if (n === null) {
        throw new DockerError(0, op, "engine closed the connection before answering");
      }
      buf = concatBytes(buf, chunk.subarray(0, n));
      end = indexOf(buf, HEADER_END);
      if (end < 0 && buf.length > MAX_HEADER) {
        throw new DockerError(0, op, "engine answer header too large");
      }
    }
    const headerText = new TextDecoder().decode(buf.subarray(0, end));
    leftover = buf.slice(end + 4);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headerText)?.[1] ?? 0);
    if (status !== 101 && status !== 200) {
      const lenMatch = /\r\ncontent-length:\s*(\d+)/i.exec(headerText);
      const want = lenMatch ? Number(lenMatch[1]) : MAX_HEADER;
      let rest = leftover;
      while (rest.length < want) {
        const n = await conn.read(chunk).catch(() => null);
        if (n === null) break;
        rest = concatBytes(rest, chunk.subarray(0, n));
      }
      const text = new TextDecoder().decode(rest);
      throw errorFromStatus(status, op, engineMessageOf(text, headerText.split("\r\n")[0]));
    }
  } catch (err) {
    try {
      conn.close();
    } catch {
      // already closed by the deadline
    }
    throw timedOut ? t.transportError(op, err, timeoutMs, true) : t.transportError(op, err);
  } finally {
    clearTimeout(timer);
  }

  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already gone
    }
  };
  let first: Uint8Array | null = leftover.length ? leftover : null;
  const readable = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      if (first) {
        controller.enqueue(first);
        first = null;
        return;
      }
      const chunk = new Uint8Array(32 * 1024);
      let n: number | null = null;
      try {
        n = closed ? null : await conn.read(chunk);
      } catch {
        // Our own close() interrupts a pending read; either way the stream is over.
        n = null;
      }
      if (n === null) {
        close();
        controller.close();
      } else {
        controller.enqueue(chunk.slice(0, n));
      }
    },
    cancel: () => close(),
  });

  return {
    conn,
    readable,
    write: async (bytes) => {
      if (closed) throw new DockerError(0, op, "session is closed");
      try {
        await writeAll(conn, bytes);
      } catch (err) {
        throw t.transportError(op, err);
      }
    },
    closeWrite: async () => {
      if (!closed) await conn.closeWrite().catch(() => {});
    },
    close,
  };
}
