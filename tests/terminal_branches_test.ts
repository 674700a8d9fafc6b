// The terminal proxy's refusals and keep-alive, each reached on purpose: 1013 when the API
// cannot be asked, 1011 when the engine cannot start the shell, another user's reconnect id,
// and the ping/pong keep-alive seen by a raw WebSocket client that does (or does not) answer
// pings. Shells run in a real container; validation comes from a stand-in API where a test
// needs two users on one project, which the real API never allows.
import assert from "node:assert/strict";
import { loadConfig } from "@/core/config.ts";
import { DockerClient } from "@/infra/docker/mod.ts";
import { silentLogger } from "@/core/log.ts";
import { Close, InternalApi, startTerminalProxy, type TerminalProxy } from "@/terminal/mod.ts";
import type { TerminalSettings } from "@/terminal/settings.ts";
import type { Validation } from "@/terminal/api-client.ts";
import { requireEngine, SKIP_ENGINE_TESTS, TEST_LABELS, uniqueName } from "./helpers/engine.ts";
import { startEngineFaultProxy } from "./helpers/engine-faults.ts";
import { sandboxImage } from "./helpers/env.ts";
import { TermClient } from "./helpers/terminal.ts";

const baseSettings: TerminalSettings = (() => {
  const { enabled: _e, publicUrl: _p, apiInternalUrl: _a, ...rest } = loadConfig({}).terminal;
  return rest;
})();

const test = (name: string, fn: () => Promise<void>, engine = true) =>
  Deno.test({
    name,
    ignore: engine && SKIP_ENGINE_TESTS,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });

/**
 * A terminal proxy on a free port of loopback, with `base`, its ws:// address. Disposable
 * (as every TerminalProxy): `await using proxy = proxyWith(...)` shuts it down.
 */
function proxyWith(
  engine: Pick<DockerClient, "execTty" | "signalMarked">,
  api: { validate(token: string, projectId: string): Promise<Validation | null> },
  settings: Partial<TerminalSettings> = {},
): TerminalProxy & { base: string } {
  const proxy = startTerminalProxy({
    engine,
    api: {
      validate: (token, projectId) => api.validate(token, projectId),
      reportActivity: () => Promise.resolve("ok" as const),
    },
    log: silentLogger,
    settings: { ...baseSettings, ...settings },
    hostname: "127.0.0.1",
    port: 0,
  });
  return Object.assign(proxy, { base: `ws://127.0.0.1:${proxy.addr.port}` });
}

/**
 * Connects, and resolves with the close and everything that came before it. A connection
 * still open after 15 s (it was let in) is closed by the client: 1000, and the test fails.
 */
async function refusal(url: string) {
  using timers = new DisposableStack();
  const c = new TermClient(url);
  const timer = setTimeout(() => c.close(), 15_000);
  timers.defer(() => clearTimeout(timer));
  const closed = await c.closed;
  return { ...closed, frames: c.control.length + c.bytesReceived };
}

/**
 * A running container of the sandbox image (it has the agent user), idling. Disposing it
 * removes it: `await using container = await idleSandbox(engine)`.
 */
async function idleSandbox(engine: DockerClient): Promise<{ id: string } & AsyncDisposable> {
  const { id } = await engine.createContainer(uniqueName("pomodex-test-term"), {
    Image: sandboxImage(),
    Entrypoint: ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
    Labels: TEST_LABELS,
  });
  const container = {
    id,
    [Symbol.asyncDispose]: async () => {
      await engine.removeContainer(id, { force: true });
    },
  };
  // A start that fails removes it too; once it runs, it is the caller's to dispose of.
  await using made = new AsyncDisposableStack();
  made.use(container);
  await engine.startContainer(id);
  made.move();
  return container;
}

/** A stand-in for POST /internal/validate: each token is a user, every project runs `containerId`. */
function usersApi(containerId: string) {
  return {
    validate: (token: string) =>
      Promise.resolve(
        ["alice", "bob"].includes(token)
          ? { userId: `user-${token}`, containerId, status: "running" }
          : null,
      ),
  };
}

test("terminal: 1013 when the API cannot be asked, and nothing reaches the engine", async () => {
  const engineCalls: string[] = [];
  const engine = {
    execTty: () => {
      engineCalls.push("execTty");
      return Promise.reject(new Error("no shell may start"));
    },
    signalMarked: () => Promise.resolve(),
  } as unknown as DockerClient;
  // Torn down in reverse: the slow API's requests are answered, then the listener that hangs
  // up is closed, then the APIs' server is shut down (it waits for the requests it holds).
  await using cleanup = new AsyncDisposableStack();
  // An API that takes the connection and hangs up, one that answers 503, one that never
  // answers (past the client's timeout).
  let pending: (() => void)[] = [];
  const apis = cleanup.use(
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      if (new URL(req.url).pathname.startsWith("/slow")) {
        return new Promise((resolve) => pending.push(() => resolve(new Response(null))));
      }
      if (new URL(req.url).pathname.startsWith("/unavailable")) {
        return Response.json({ code: "database_unavailable" }, { status: 503 });
      }
      return Response.json({ code: "unauthorized" }, { status: 401 });
    }),
  );
  const hangsUp = cleanup.use(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  (async () => {
    for await (const conn of hangsUp) conn.close();
  })();
  cleanup.defer(() => {
    for (const answer of pending) answer();
    pending = [];
  });
  const api = `http://127.0.0.1:${apis.addr.port}`;
  const cases: [string, InternalApi | { validate(): Promise<never> }, string][] = [
    [
      "an API that hangs up",
      new InternalApi({ baseUrl: `http://127.0.0.1:${(hangsUp.addr as Deno.NetAddr).port}` }),
      "the API did not answer",
    ],
    [
      "an API answering 503",
      new InternalApi({ baseUrl: `${api}/unavailable` }),
      "the API did not answer",
    ],
    [
      "an API too slow",
      new InternalApi({ baseUrl: `${api}/slow`, timeoutMs: 300 }),
      "the API did not answer",
    ],
    // Anything else that goes wrong while asking is a "try again" too, never a 4401.
    [
      "a client that fails",
      { validate: () => Promise.reject(new TypeError("bug")) },
      "validation failed",
    ],
  ];
  for (const [what, client, reason] of cases) {
    await using proxy = proxyWith(engine, client as InternalApi);
    const url = `${proxy.base}/terminal/${crypto.randomUUID()}?token=whatever&reconnect=abcdefgh`;
    const got = await refusal(url);
    assert.deepEqual(
      { code: got.code, reason: got.reason, frames: got.frames },
      { code: Close.tryAgainLater, reason, frames: 0 },
      what,
    );
    assert.equal(proxy.shellCount(), 0);
  }
  // The same proxy, asking an API that says no: that is a 4401, not a 1013.
  {
    await using proxy = proxyWith(engine, new InternalApi({ baseUrl: api }));
    const got = await refusal(`${proxy.base}/terminal/${crypto.randomUUID()}?token=whatever`);
    assert.equal(got.code, Close.unauthorized);
  }
  assert.deepEqual(engineCalls, [], "no shell was started");
}, false);

test("terminal: 1011 when the engine cannot start the shell; the slot comes back", async () => {
  // Torn down in reverse: the proxy, the faulty client, the fault proxy, the container, the
  // engine client.
  using engine = await requireEngine();
  await using container = await idleSandbox(engine);
  let failExecs = true;
  await using faults = startEngineFaultProxy((req, path) =>
    failExecs && req.method === "POST" && path === `/containers/${container.id}/exec`
      ? Response.json(
        {
          message:
            "OCI runtime exec failed: exec failed: unable to start container process (injected)",
        },
        { status: 500 },
      )
      : null
  );
  using closeFaulty = new DisposableStack();
  const faulty = new DockerClient({ socketPath: faults.dockerHost.slice("unix://".length) });
  closeFaulty.defer(() => faulty.close());
  // The fault proxy passes plain requests only, not the hijacked stream of a TTY: once the
  // fault is lifted, shells go to the engine directly.
  const switching = {
    execTty: (...args: Parameters<DockerClient["execTty"]>) =>
      (failExecs ? faulty : engine).execTty(...args),
    signalMarked: (...args: Parameters<DockerClient["signalMarked"]>) =>
      engine.signalMarked(...args),
  };
  // One shell per project: the next connection gets in only if the failed one gave its
  // slot back.
  await using proxy = proxyWith(switching, usersApi(container.id), {
    maxConnectionsPerProject: 1,
  });
  const project = crypto.randomUUID();
  const got = await refusal(`${proxy.base}/terminal/${project}?token=alice`);
  assert.deepEqual([got.code, got.reason, got.frames], [
    Close.internalError,
    "could not start a shell",
    0,
  ]);
  assert.equal(proxy.shellCount(), 0);

  failExecs = false;
  await using c = await TermClient.open(`${proxy.base}/terminal/${project}?token=alice`);
  assert.equal(await c.run("id -un"), "agent");
});

test("terminal: another user's reconnect id never reaches the shell behind it", async () => {
  // Torn down in reverse: Alice's sockets, the proxy, the container, the engine client.
  using engine = await requireEngine();
  await using container = await idleSandbox(engine);
  await using proxy = proxyWith(engine, usersApi(container.id), {
    reconnectGraceSeconds: 60,
  });
  const project = crypto.randomUUID();
  const id = crypto.randomUUID();
  const url = (token: string) => `${proxy.base}/terminal/${project}?token=${token}&reconnect=${id}`;
  await using alice = await TermClient.open(url("alice"));
  assert.equal((await alice.waitForControl("session")).state, "new");
  const pid = await alice.run("echo $$");
  await alice.run("echo private-$((6*7))");

  // While Alice is attached: Bob is refused, and Alice is not superseded.
  const whileAttached = await refusal(url("bob"));
  assert.deepEqual([whileAttached.code, whileAttached.reason, whileAttached.frames], [
    Close.replaced,
    "this reconnect id is taken",
    0,
  ]);
  assert.ok(alice.isOpen, "Alice keeps her socket");
  assert.equal(await alice.run("echo $$"), pid);

  // While her shell waits for her (she closed the tab): Bob gets no replay, no shell.
  alice.close();
  await alice.closed;
  const whileDetached = await refusal(url("bob"));
  assert.deepEqual([whileDetached.code, whileDetached.frames], [Close.replaced, 0]);

  // Alice comes back to the same shell, its output intact.
  await using again = await TermClient.open(url("alice"));
  const hello = await again.waitForControl("session");
  assert.equal(hello.state, "resumed");
  await again.waitFor("private-42");
  assert.equal(await again.run("echo $$"), pid, "the same shell");
});

/**
 * A WebSocket client written on a bare TCP connection, so that it can do what no browser
 * does: leave pings unanswered. Frames from the server arrive unmasked (RFC 6455 5.1).
 */
class RawWebSocket {
  #buf: Uint8Array = new Uint8Array(0);
  readonly frames: { opcode: number; payload: Uint8Array; at: number }[] = [];
  readonly openedAt = performance.now();

  private constructor(readonly conn: Deno.TcpConn, rest: Uint8Array) {
    this.#buf = rest;
  }

  static async connect(port: number, path: string): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    let head: Uint8Array = new Uint8Array(0);
    while (true) {
      const end = indexOf(head, new TextEncoder().encode("\r\n\r\n"));
      if (end >= 0) {
        const text = new TextDecoder().decode(head.subarray(0, end));
        assert.match(text, /^HTTP\/1\.1 101 /, text);
        return new RawWebSocket(conn, head.slice(end + 4));
      }
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("closed during the handshake");
      head = concat(head, chunk.subarray(0, n));
    }
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(65536);
      // A bound so that a proxy that never pings fails the test instead of hanging it.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        this.conn.read(chunk).catch(() => null),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("nothing from the proxy in 60 s")), 60_000);
        }),
      ]).finally(() => clearTimeout(timer));
      if (got === null) return false;
      this.#buf = concat(this.#buf, chunk.subarray(0, got));
    }
    return true;
  }

  /** The next frame, or null at the end of the stream. */
  async read(): Promise<{ opcode: number; payload: Uint8Array; at: number } | null> {
    if (!(await this.#fill(2))) return null;
    const opcode = this.#buf[0] & 0x0f;
    let len = this.#buf[1] & 0x7f;
    let offset = 2;
    if (len === 126) {
      if (!(await this.#fill(4))) return null;
      len = (this.#buf[2] << 8) | this.#buf[3];
      offset = 4;
    } else if (len === 127) {
      if (!(await this.#fill(10))) return null;
      len = Number(new DataView(this.#buf.buffer, this.#buf.byteOffset + 2, 8).getBigUint64(0));
      offset = 10;
    }
    if (!(await this.#fill(offset + len))) return null;
    const payload = this.#buf.slice(offset, offset + len);
    this.#buf = this.#buf.slice(offset + len);
    const frame = { opcode, payload, at: performance.now() - this.openedAt };
    this.frames.push(frame);
    return frame;
  }

  /** A client frame: always masked. */
  async send(opcode: number, payload: Uint8Array = new Uint8Array(0)) {
    assert.ok(payload.length < 126);
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const frame = new Uint8Array(6 + payload.length);
    frame[0] = 0x80 | opcode;
    frame[1] = 0x80 | payload.length;
    frame.set(mask, 2);
    for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i % 4];
    await this.conn.write(frame);
  }

  close() {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  /** close(), for `using ws = await RawWebSocket.connect(...)`. */
  [Symbol.dispose]() {
    this.close();
  }
}

const OP = { text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function closeFrame(payload: Uint8Array) {
  return {
    code: payload.length >= 2 ? (payload[0] << 8) | payload[1] : null,
    reason: new TextDecoder().decode(payload.subarray(2)),
  };
}

test("terminal: a peer that answers no ping is closed with 1001 'No response from ping frame.'; one that answers stays", async () => {
  // Torn down in reverse: the raw sockets, the proxy, the container, the engine client.
  using engine = await requireEngine();
  await using container = await idleSandbox(engine);
  const interval = 2;
  await using proxy = proxyWith(engine, usersApi(container.id), {
    pingIntervalSeconds: interval,
    reconnectGraceSeconds: 60,
  });
  const project = crypto.randomUUID();
  // Silent and deaf: pinged, then closed with 1001 and Deno's reason, then the end.
  const reconnect = crypto.randomUUID();
  using deaf = await RawWebSocket.connect(
    proxy.addr.port,
    `/terminal/${project}?token=alice&reconnect=${reconnect}`,
  );
  let frame;
  while ((frame = await deaf.read()) && frame.opcode !== OP.close) {
    assert.ok([OP.text, OP.binary, OP.ping].includes(frame.opcode), `opcode ${frame.opcode}`);
  }
  assert.ok(frame, "a close frame, not just the end of the stream");
  assert.deepEqual(closeFrame(frame.payload), {
    code: 1001,
    reason: "No response from ping frame.",
  });
  const pings = deaf.frames.filter((f) => f.opcode === OP.ping);
  assert.equal(pings.length, 1, "pinged once before the close");
  assert.ok(pings[0].at < frame.at, "the ping came first");
  assert.equal(await deaf.read(), null, "then the connection ends");
  console.log(
    `unanswered (TERMINAL_PING_INTERVAL_SECONDS=${interval}): ping at ${
      Math.round(pings[0].at)
    } ms, close at ${Math.round(deaf.frames.at(-1)!.at)} ms after the handshake`,
  );

  // A lost connection, not a close for cause: the shell waits for its client, who comes back
  // to it (a browser's WebSocket answers pings by itself).
  {
    await using back = await TermClient.open(
      `${proxy.base}/terminal/${project}?token=alice&reconnect=${reconnect}`,
    );
    assert.equal((await back.waitForControl("session")).state, "resumed");
    assert.equal(await back.run("echo back"), "back");
  }

  // Silent but answering every ping: still open after three pings, so three intervals'
  // worth of silence did not close it.
  using polite = await RawWebSocket.connect(proxy.addr.port, `/terminal/${project}?token=alice`);
  let answered = 0;
  while (answered < 3) {
    const f = await polite.read();
    assert.ok(f && f.opcode !== OP.close, `closed after ${answered} answered pings`);
    if (f.opcode === OP.ping) {
      await polite.send(OP.pong, f.payload);
      answered++;
    }
  }
  // It still works: a keystroke comes back as output.
  await polite.send(OP.binary, new TextEncoder().encode("echo still-$((2+3))\n"));
  let seen = "";
  while (!seen.includes("still-5")) {
    const f = await polite.read();
    assert.ok(f && f.opcode !== OP.close, `closed while waiting for output: ${seen}`);
    if (f.opcode === OP.binary) seen += new TextDecoder().decode(f.payload);
    if (f.opcode === OP.ping) await polite.send(OP.pong, f.payload);
  }

  // What counts as "silent" is the client's side only: a shell that keeps printing does
  // not keep a deaf client's connection open.
  using printing = await RawWebSocket.connect(
    proxy.addr.port,
    `/terminal/${project}?token=alice`,
  );
  await printing.send(
    OP.binary,
    new TextEncoder().encode("while :; do echo tick; sleep 0.2; done\n"),
  );
  let last;
  let ticks = 0;
  while ((last = await printing.read()) && last.opcode !== OP.close) {
    if (last.opcode === OP.binary && new TextDecoder().decode(last.payload).includes("tick")) {
      ticks++;
    }
  }
  assert.ok(last, "closed with a close frame");
  assert.deepEqual(closeFrame(last.payload), {
    code: 1001,
    reason: "No response from ping frame.",
  });
  assert.ok(ticks > 1, `output was flowing to the client (${ticks} ticks)`);
});

test(
  "terminal: a client that hangs up while it is being let in does not hold up the proxy's shutdown",
  async () => {
    // Deno upgrades such a request all the same, and the socket it makes stays CONNECTING
    // forever: no open, no close, and a graceful server.shutdown() waits for it without end
    // (a CI run's teardown waited out 150 s here). Both ways in are tried: a refusal (the
    // credentials are not valid) and a socket that would have been let in.
    const engine = {
      execTty: () => Promise.reject(new Error("no shell may start: nobody is connected")),
      signalMarked: () => Promise.resolve(0),
    } as unknown as DockerClient;
    for (const verdict of [null, { userId: "user-a", containerId: "c", status: "running" }]) {
      let asked!: () => void;
      const validating = new Promise<void>((resolve) => (asked = resolve));
      let answer!: (v: Validation | null) => void;
      // Shut down by hand below, within a bound: that is what the test is about (disposal
      // would wait on a hung shutdown without end).
      const proxy = proxyWith(engine, {
        validate: () => {
          asked();
          return new Promise((resolve) => (answer = resolve));
        },
      });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.addr.port });
      await conn.write(new TextEncoder().encode(
        `GET /terminal/${crypto.randomUUID()}?ticket=t HTTP/1.1\r\nHost: x\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      ));
      await validating;
      conn.close();
      await new Promise((r) => setTimeout(r, 100)); // the hang-up reaches the proxy first
      answer(verdict);
      await new Promise((r) => setTimeout(r, 100)); // and then the upgrade
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        proxy.shutdown().then(() => "shut down"),
        new Promise((r) => (timer = setTimeout(() => r("still waiting after 20 s"), 20_000))),
      ]);
      clearTimeout(timer);
      assert.equal(outcome, "shut down", verdict ? "a socket let in" : "a refusal");
    }
  },
  false,
);
