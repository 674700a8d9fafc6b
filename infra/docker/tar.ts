// Just enough ustar to hand a few files to putArchive and read them back from getArchive
// (keys, config files), without a dependency. Not for whole workspaces: those stream.

import { concatBytes } from "@/core/bytes.ts";

export interface TarEntry {
  name: string;
  type?: "file" | "dir";
  data?: Uint8Array | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function writeString(block: Uint8Array, offset: number, size: number, value: string) {
  const bytes = enc.encode(value);
  if (bytes.length > size) throw new Error(`tar: "${value}" is longer than ${size} bytes`);
  block.set(bytes, offset);
}

function writeOctal(block: Uint8Array, offset: number, size: number, value: number) {
  writeString(block, offset, size, value.toString(8).padStart(size - 1, "0") + "\0");
}

function header(entry: TarEntry, name: string, size: number, flag: string): Uint8Array {
  const block = new Uint8Array(512);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, entry.mode ?? (entry.type === "dir" ? 0o755 : 0o644));
  writeOctal(block, 108, 8, entry.uid ?? 0);
  writeOctal(block, 116, 8, entry.gid ?? 0);
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, entry.mtime ?? Math.floor(Date.now() / 1000));
  block.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  block[156] = flag.charCodeAt(0);
  writeString(block, 257, 6, "ustar ");
  writeString(block, 263, 2, " \0");
  let sum = 0;
  for (const b of block) sum += b;
  writeString(block, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return block;
}

const pad = (n: number) => new Uint8Array((512 - (n % 512)) % 512);

export function makeTar(entries: TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = e.type === "dir"
      ? new Uint8Array(0)
      : typeof e.data === "string"
      ? enc.encode(e.data)
      : e.data ?? new Uint8Array(0);
    let name = e.name.replace(/^\/+/, "");
    if (e.type === "dir" && !name.endsWith("/")) name += "/";
    const nameBytes = enc.encode(name);
    if (nameBytes.length > 100) {
      // GNU long name: a pseudo-entry carrying the full name, understood by GNU tar and
      // by the Go archive/tar that Docker and Podman unpack with.
      const long = enc.encode(name + "\0");
      parts.push(header(e, "././@LongLink", long.length, "L"), long, pad(long.length));
      name = dec.decode(nameBytes.subarray(0, 100)).replace(/\uFFFD$/, "");
    }
    parts.push(header(e, name, data.length, e.type === "dir" ? "5" : "0"), data, pad(data.length));
  }
  parts.push(new Uint8Array(1024));
  return concatBytes(...parts);
}

export interface ReadTarEntry {
  name: string;
  type: "file" | "dir" | "other";
  mode: number;
  data: Uint8Array;
}

function readString(block: Uint8Array, offset: number, size: number): string {
  const raw = block.subarray(offset, offset + size);
  const end = raw.indexOf(0);
  return dec.decode(end >= 0 ? raw.subarray(0, end) : raw);
}

function readOctal(block: Uint8Array, offset: number, size: number): number {
  return parseInt(readString(block, offset, size).trim() || "0", 8);
}

/** Parses a whole (small) tar in memory; honours GNU long names and pax `path`. */
export function readTar(bytes: Uint8Array): ReadTarEntry[] {
  const out: ReadTarEntry[] = [];
  let at = 0;
  let longName: string | null = null;
  while (at + 512 <= bytes.length) {
    const block = bytes.subarray(at, at + 512);
    if (block.every((b) => b === 0)) break;
    const size = readOctal(block, 124, 12);
    const flag = String.fromCharCode(block[156] || 0x30);
    const data = bytes.slice(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (flag === "L") {
      longName = readString(data, 0, data.length);
      continue;
    }
    if (flag === "x") {
      const m = /\d+ path=([^\n]*)\n/.exec(dec.decode(data));
      if (m) longName = m[1];
      continue;
    }
    if (flag === "g") continue;
    // Only POSIX ustar has a name prefix there; GNU keeps other fields in that spot.
    const prefix = readString(block, 257, 6) === "ustar" ? readString(block, 345, 155) : "";
    const name = longName ?? (prefix ? `${prefix}/` : "") + readString(block, 0, 100);
    longName = null;
    const type = flag === "5" ? "dir" : flag === "0" || flag === "\0" ? "file" : "other";
    out.push({ name, type, mode: readOctal(block, 100, 8), data });
  }
  return out;
}
