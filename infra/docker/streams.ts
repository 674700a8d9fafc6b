import { concatBytes } from "@/core/bytes.ts";
import type { ProgressEvent } from "./types.ts";

/**
 * Splits a stream of concatenated JSON objects. Docker separates them with "\r\n", Podman
 * with "\n", and old engines with nothing at all, so we split on brace depth instead of
 * on lines.
 */
export class JsonObjectSplitter {
  #buf = "";
  #depth = 0;
  #inString = false;
  #escaped = false;
  #start = -1;
  #scanned = 0;

  push(text: string): unknown[] {
    this.#buf += text;
    const out: unknown[] = [];
    for (let i = this.#scanned; i < this.#buf.length; i++) {
      const ch = this.#buf[i];
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (ch === "\\") this.#escaped = true;
        else if (ch === '"') this.#inString = false;
        continue;
      }
      if (ch === '"') this.#inString = this.#depth > 0;
      else if (ch === "{") {
        if (this.#depth++ === 0) this.#start = i;
      } else if (ch === "}" && this.#depth > 0 && --this.#depth === 0) {
        const raw = this.#buf.slice(this.#start, i + 1);
        try {
          out.push(JSON.parse(raw));
        } catch {
          out.push({ status: raw });
        }
        this.#buf = this.#buf.slice(i + 1);
        i = -1;
        this.#start = -1;
      }
    }
    this.#scanned = this.#buf.length;
    if (this.#depth === 0) {
      // Text between objects (newlines) is dropped so the buffer cannot grow.
      this.#buf = "";
      this.#scanned = 0;
    }
    return out;
  }

  /** Whatever trailed the last complete object; non-empty means the stream was cut. */
  rest(): string {
    return this.#buf.trim();
  }
}

/**
 * Reads a pull/push progress stream to its end. The engine answers 200 before it knows
 * whether the pull or push works, so failure arrives as an `error` line inside the body:
 * returns that message (the last one), or null when the stream reported none.
 */
export async function drainProgress(
  body: ReadableStream<Uint8Array>,
  onProgress?: (p: ProgressEvent) => void,
): Promise<string | null> {
  const splitter = new JsonObjectSplitter();
  const decoder = new TextDecoder();
  let error: string | null = null;
  const handle = (objs: unknown[]) => {
    for (const o of objs) {
      const ev = o as ProgressEvent;
      const msg = ev.errorDetail?.message || ev.error;
      if (msg) error = msg;
      if (onProgress) {
        try {
          onProgress(ev);
        } catch {
          // a caller's progress bar must not break the pull
        }
      }
    }
  };
  for await (const chunk of body) handle(splitter.push(decoder.decode(chunk, { stream: true })));
  handle(splitter.push(decoder.decode()));
  return error;
}

/**
 * Without a TTY the engine multiplexes stdout and stderr on one connection: frames of an
 * 8-byte header (stream id, 3 zero bytes, big-endian length) and the payload. Frames split
 * freely across reads, so we keep what is left over between pushes.
 */
export class FrameDemuxer {
  readonly stdout: Uint8Array[] = [];
  readonly stderr: Uint8Array[] = [];
  #pending: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    let buf = this.#pending.length ? concatBytes(this.#pending, chunk) : chunk;
    while (buf.length >= 8) {
      const size = new DataView(buf.buffer, buf.byteOffset, 8).getUint32(4);
      if (buf.length < 8 + size) break;
      const payload = buf.slice(8, 8 + size);
      // 1 = stdout, 2 = stderr; 0 (stdin echo) and anything unknown count as stdout.
      (buf[0] === 2 ? this.stderr : this.stdout).push(payload);
      buf = buf.subarray(8 + size);
    }
    this.#pending = buf.slice();
  }

  /** Bytes of an incomplete frame at the end: the stream was cut mid-frame. */
  get leftover(): number {
    return this.#pending.length;
  }
}
