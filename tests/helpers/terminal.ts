/**
 * A WebSocket client of the terminal proxy, as a browser tab would be: binary frames are
 * keystrokes and screen bytes, text frames are JSON control messages.
 */
export class TermClient {
  readonly ws: WebSocket;
  /** Everything the terminal printed, decoded as UTF-8. */
  text = "";
  bytesReceived = 0;
  /** Text frames the proxy sent (parsed JSON). */
  control: Record<string, unknown>[] = [];
  readonly opened: Promise<boolean>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #decoder = new TextDecoder();
  #waiters = new Set<() => void>();
  /** Called with every binary frame (benchmarks count bytes without decoding). */
  onBytes?: (bytes: Uint8Array) => void;
  keepText = true;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve) => {
      this.ws.addEventListener("open", () => resolve(true));
      this.ws.addEventListener("close", () => resolve(false));
    });
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (e) => {
        this.closeCode = e.code;
        resolve({ code: e.code, reason: e.reason });
        this.#wake();
      });
    });
    this.ws.addEventListener("message", (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data === "string") {
        this.control.push(JSON.parse(e.data));
      } else {
        const bytes = new Uint8Array(e.data);
        this.bytesReceived += bytes.length;
        this.onBytes?.(bytes);
        if (this.keepText) this.text += this.#decoder.decode(bytes, { stream: true });
      }
      this.#wake();
    });
  }

  static async open(url: string): Promise<TermClient> {
    const c = new TermClient(url);
    if (!(await c.opened)) {
      const { code, reason } = await c.closed;
      throw new Error(`the terminal closed before opening: ${code} ${reason}`);
    }
    return c;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(text: string | Uint8Array) {
    this.ws.send(typeof text === "string" ? new TextEncoder().encode(text) : text);
  }

  resize(cols: number, rows: number) {
    this.ws.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /** Marks the current end of the output: waitFor(..., from) looks only after it. */
  mark(): number {
    return this.text.length;
  }

  /** Resolves with the output once `pattern` shows up after `from`; rejects on timeout or close. */
  async waitFor(pattern: string | RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const found = () => {
      const tail = this.text.slice(from);
      return typeof pattern === "string" ? tail.includes(pattern) : pattern.test(tail);
    };
    await this.#until(
      found,
      timeoutMs,
      () => `${pattern} in ${JSON.stringify(this.text.slice(-400))}`,
    );
    return this.text.slice(from);
  }

  /** Waits for a control message of this type. */
  async waitForControl(type: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    await this.#until(() => this.control.some((m) => m.type === type), timeoutMs, () => type);
    return this.control.find((m) => m.type === type)!;
  }

  /** Runs a command and returns its output: what comes between two unique markers. */
  async run(command: string, timeoutMs = 10_000): Promise<string> {
    const id = crypto.randomUUID().slice(0, 8);
    // The markers are built by the shell, so the echoed command line never matches them.
    const from = this.mark();
    this.send(`echo "<<$((1))${id}"; ${command}; echo "$((1))${id}>>"\n`);
    const out = await this.waitFor(
      new RegExp(`<<1${id}\\r?\\n([\\s\\S]*?)1${id}>>`),
      timeoutMs,
      from,
    );
    return new RegExp(`<<1${id}\\r?\\n([\\s\\S]*?)1${id}>>`).exec(out)![1].replace(/\r\n$/, "");
  }

  close(code = 1000) {
    try {
      this.ws.close(code);
    } catch {
      // already closed
    }
  }

  /** Closes and waits until closed: what `await using c = await TermClient.open(...)` does at the end of the scope. */
  async [Symbol.asyncDispose]() {
    this.close();
    await this.closed;
  }

  /** The close code once closed (for error messages). */
  closeCode: number | null = null;

  #wake() {
    for (const w of this.#waiters) w();
  }

  #until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) finish();
        else if (this.ws.readyState === WebSocket.CLOSED) {
          finish(new Error(`closed (${this.closeCode}) waiting for ${what()}`));
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out waiting for ${what()}`)),
        timeoutMs,
      );
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.#waiters.add(check);
    });
  }
}

/** Connects and returns the close code, for connections that are expected to be refused. */
export async function closeCodeOf(url: string, timeoutMs = 15_000): Promise<number> {
  const c = new TermClient(url);
  const timer = setTimeout(() => c.close(), timeoutMs);
  try {
    return (await c.closed).code;
  } finally {
    clearTimeout(timer);
  }
}
