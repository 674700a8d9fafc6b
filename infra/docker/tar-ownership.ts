import { concatBytes } from "@/core/bytes.ts";

/**
 * A tar stream with every entry's owner set to root (uid and gid 0), for PUT /archive.
 *
 * A workspace backup is read with GET /archive, and under a user namespace engines write the
 * host's ids into it (Docker's userns-remap: 101000 for agent). Sent back as it is, the engine
 * refuses it ("Container ID 101000 cannot be mapped to a host ID"). Root maps everywhere, and
 * the restore gives the workspace to agent afterwards anyway.
 *
 * Streams: data passes through untouched; only the 512-byte headers (and pax records, which
 * may carry uid= and gid=) are rewritten.
 */
export function resetTarOwnership(): TransformStream<Uint8Array, Uint8Array> {
  let leftover = new Uint8Array(0);
  let skip = 0; // file data (with padding) still to pass through
  let pax = 0; // pax record bytes (with padding) to rewrite next
  return new TransformStream({
    transform(chunk, ctl) {
      const buf = leftover.length ? concatBytes(leftover, chunk) : chunk;
      let at = 0;
      while (at < buf.length) {
        if (skip > 0) {
          const n = Math.min(skip, buf.length - at);
          ctl.enqueue(buf.subarray(at, at + n));
          at += n;
          skip -= n;
          continue;
        }
        const need = pax > 0 ? pax : 512;
        if (buf.length - at < need) break;
        const piece = buf.slice(at, at + need);
        at += need;
        if (pax > 0) {
          ctl.enqueue(zeroPaxIds(piece));
          pax = 0;
          continue;
        }
        if (piece.every((b) => b === 0)) {
          ctl.enqueue(piece);
          continue;
        }
        const padded = Math.ceil(sizeOf(piece) / 512) * 512;
        const flag = String.fromCharCode(piece[156]);
        ctl.enqueue(zeroHeaderIds(piece));
        if (flag === "x" || flag === "g") pax = padded;
        else skip = padded;
      }
      leftover = buf.slice(at);
    },
    flush(ctl) {
      if (leftover.length) ctl.enqueue(leftover);
    },
  });
}

/** The entry's size: octal text, or GNU base-256 when the top bit of its first byte is set. */
function sizeOf(header: Uint8Array): number {
  const field = header.subarray(124, 136);
  if (field[0] & 0x80) {
    let n = field[0] & 0x7f;
    for (const b of field.subarray(1)) n = n * 256 + b;
    return n;
  }
  const text = new TextDecoder().decode(field).replace(/\0.*$/s, "").trim();
  return parseInt(text || "0", 8);
}

function zeroHeaderIds(header: Uint8Array): Uint8Array {
  const zero = new TextEncoder().encode("0000000\0");
  header.set(zero, 108); // uid
  header.set(zero, 116); // gid
  header.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  let sum = 0;
  for (const b of header) sum += b;
  header.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return header;
}

/** "NN uid=2147484648\n" → "NN uid=0000000000\n": same length, so the record sizes hold. */
function zeroPaxIds(records: Uint8Array): Uint8Array {
  // One character per byte (not a text decoder: names in the records may be any bytes).
  const text = Array.from(records, (b) => String.fromCharCode(b)).join("");
  const rewritten = text.replace(
    /(\d+ (?:uid|gid)=)(\d+)\n/g,
    (_, key, digits) => `${key}${"0".repeat(digits.length)}\n`,
  );
  return Uint8Array.from(rewritten, (c) => c.charCodeAt(0));
}
