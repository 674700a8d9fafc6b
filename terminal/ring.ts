/**
 * The last `capacity` bytes a shell printed, replayed to a socket that re-attaches so the
 * screen is not blank. Fixed memory per shell whatever the shell prints.
 */
export class RingBuffer {
  #buf: Uint8Array;
  #start = 0;
  #length = 0;

  constructor(readonly capacity: number) {
    this.#buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  push(bytes: Uint8Array): void {
    const cap = this.capacity;
    if (cap === 0) return;
    if (bytes.length >= cap) {
      this.#buf.set(bytes.subarray(bytes.length - cap));
      this.#start = 0;
      this.#length = cap;
      return;
    }
    let end = (this.#start + this.#length) % cap;
    const first = Math.min(bytes.length, cap - end);
    this.#buf.set(bytes.subarray(0, first), end);
    this.#buf.set(bytes.subarray(first), 0);
    end = (end + bytes.length) % cap;
    const overflow = this.#length + bytes.length - cap;
    if (overflow > 0) {
      this.#start = (this.#start + overflow) % cap;
      this.#length = cap;
    } else {
      this.#length += bytes.length;
    }
  }

  /**
   * A copy of the contents, starting at a UTF-8 character boundary: a replay that began
   * in the middle of a character would print a replacement glyph first.
   */
  snapshot(): Uint8Array {
    const out = new Uint8Array(this.#length);
    const first = Math.min(this.#length, this.capacity - this.#start);
    out.set(this.#buf.subarray(this.#start, this.#start + first));
    out.set(this.#buf.subarray(0, this.#length - first), first);
    let skip = 0;
    while (skip < out.length && skip < 3 && (out[skip] & 0xc0) === 0x80) skip++;
    return out.subarray(skip);
  }
}
