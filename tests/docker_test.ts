// infra/docker against the real engine (Podman's Docker-compatible socket here). Every test
// names its resources pomodex-test-<random>, labels them pomodex.test=1 and removes them.
import { concatBytes } from "@/core/bytes.ts";
import assert from "node:assert/strict";
import {
  type ContainerInfo,
  DockerClient,
  DockerError,
  findDockerSocket,
  isNotFound,
  makeTar,
  readTar,
  splitRef,
  type TtySession,
} from "@/infra/docker/mod.ts";
import { FrameDemuxer, JsonObjectSplitter } from "@/infra/docker/streams.ts";
import {
  engineSocketPath,
  requireEngine,
  SKIP_ENGINE_TESTS,
  TEST_LABELS,
  testImage,
  uniqueName,
} from "./helpers/engine.ts";
import { testRegistry } from "./helpers/env.ts";
import { refusingAddress } from "./helpers/ports.ts";

// This run's own label, so the leftover check ignores other files' tests running alongside.
const RUN = uniqueName("run");
const LABELS = { ...TEST_LABELS, "pomodex.test.run": RUN };
const enc = new TextEncoder();
const dec = new TextDecoder();

function engineTest(name: string, fn: (d: DockerClient) => Promise<void>) {
  Deno.test({
    name: `docker: ${name}`,
    ignore: SKIP_ENGINE_TESTS,
    fn: async () => {
      using d = await requireEngine();
      await fn(d);
    },
  });
}

/** A running container that idles, removed (with its anonymous volumes) by the returned fn. */
async function withContainer(
  d: DockerClient,
  fn: (id: string, name: string) => Promise<void>,
  extra: { Binds?: string[] } = {},
) {
  await using cleanup = new AsyncDisposableStack();
  const name = uniqueName();
  const { id } = await d.createContainer(name, {
    Image: await testImage(d),
    // Overrides the sandbox's sshd entrypoint; the trap lets stop end it at once.
    Entrypoint: ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
    Labels: LABELS,
    HostConfig: { Binds: extra.Binds },
  });
  cleanup.defer(async () => {
    await d.removeContainer(id, { force: true, volumes: true });
  });
  await d.startContainer(id);
  await fn(id, name);
}

async function sh(d: DockerClient, id: string, script: string): Promise<string> {
  const r = await d.exec(id, ["sh", "-c", script]);
  assert.equal(r.exitCode, 0, `${script}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

/** Command lines of every process in the container, from /proc (needs no ps). */
async function processes(d: DockerClient, id: string): Promise<string[]> {
  const out = await sh(
    d,
    id,
    `for p in /proc/[0-9]*; do [ "\${p#/proc/}" = "$$" ] && continue; ` +
      `c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n "$c" ] && echo "\${p#/proc/} $c"; done`,
  );
  return out.split("\n").filter((l) => l.trim());
}

async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
  seen: { text: string },
  timeoutMs = 10_000,
): Promise<RegExpExecArray> {
  using cleanup = new DisposableStack();
  const timeout = new Promise<never>((_, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`no ${pattern} within ${timeoutMs} ms; got ${JSON.stringify(seen.text)}`)),
      timeoutMs,
    );
    cleanup.defer(() => clearTimeout(timer));
  });
  while (true) {
    const m = pattern.exec(seen.text);
    if (m) {
      seen.text = seen.text.slice(m.index + m[0].length);
      return m;
    }
    const { done, value } = await Promise.race([reader.read(), timeout]);
    if (done) throw new Error(`stream ended before ${pattern}; got ${JSON.stringify(seen.text)}`);
    seen.text += dec.decode(value, { stream: true });
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return concatBytes(...parts);
}

async function rejectsWith(
  p: Promise<unknown>,
  check: (e: DockerError) => void,
): Promise<DockerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof DockerError, `expected DockerError, got ${err}`);
    check(err);
    return err;
  }
  assert.fail("expected a DockerError");
}

// ---------------------------------------------------------------- without an engine

Deno.test("docker: splitRef, findDockerSocket, fromDockerHost", () => {
  assert.deepEqual(splitRef("localhost:5000/a/b:t1"), { name: "localhost:5000/a/b", tag: "t1" });
  assert.deepEqual(splitRef("localhost:5000/a/b"), { name: "localhost:5000/a/b", tag: "latest" });
  assert.deepEqual(splitRef("debian"), { name: "debian", tag: "latest" });
  assert.equal(findDockerSocket("unix:///tmp/x.sock"), "/tmp/x.sock");
  const c = DockerClient.fromDockerHost("unix:///tmp/y.sock");
  assert.equal(c.socketPath, "/tmp/y.sock");
  assert.equal(c.apiVersion, "v1.41");
  c.close();
  assert.throws(() => DockerClient.fromDockerHost("tcp://1.2.3.4:2375"), DockerError);
});

Deno.test("docker: stream framing and JSON progress splitting", () => {
  const frame = (kind: number, s: string) => {
    const body = enc.encode(s);
    const f = new Uint8Array(8 + body.length);
    f[0] = kind;
    new DataView(f.buffer).setUint32(4, body.length);
    f.set(body, 8);
    return f;
  };
  const all = new Uint8Array([...frame(1, "hello "), ...frame(2, "oops"), ...frame(1, "world")]);
  const demux = new FrameDemuxer();
  for (let i = 0; i < all.length; i += 3) demux.push(all.subarray(i, i + 3)); // split mid-header
  assert.equal(dec.decode(new Uint8Array(demux.stdout.flatMap((c) => [...c]))), "hello world");
  assert.equal(dec.decode(demux.stderr[0]), "oops");
  assert.equal(demux.leftover, 0);

  const s = new JsonObjectSplitter();
  assert.deepEqual(s.push('{"status":"a {quoted}"}\r\n{"error":'), [{ status: "a {quoted}" }]);
  assert.deepEqual(s.push('"x\\"}"}{"status":"b"}'), [{ error: 'x"}' }, { status: "b" }]);
});

Deno.test("docker: tar round trip", () => {
  const long = "d/" + "x".repeat(120) + ".txt";
  const tar = makeTar([
    { name: "d", type: "dir" },
    { name: "d/a.txt", data: "alpha", mode: 0o600 },
    { name: long, data: new Uint8Array(1000).fill(7) },
  ]);
  assert.equal(tar.length % 512, 0);
  const back = readTar(tar);
  assert.deepEqual(back.map((e) => [e.name, e.type]), [["d/", "dir"], ["d/a.txt", "file"], [
    long,
    "file",
  ]]);
  assert.equal(dec.decode(back[1].data), "alpha");
  assert.equal(back[1].mode, 0o600);
  assert.equal(back[2].data.length, 1000);
});

Deno.test("docker: a bad socket path fails fast with status 0", async () => {
  // Failing fast means failing on the connect, not on the deadline: every call must end
  // with the "unreachable" error, never the "timed out" one a client that waited would give
  // (the deadline is the default 30 s, so a wait would also show as a slow test).
  using cleanup = new DisposableStack();
  const d = new DockerClient({ socketPath: "/nonexistent/pomodex/docker.sock" });
  cleanup.defer(() => d.close());
  const unreachable = (e: DockerError) => {
    assert.equal(e.status, 0);
    assert.match(e.message, /unreachable at \/nonexistent\/pomodex\/docker\.sock/);
    assert.doesNotMatch(e.message, /timed out/);
  };
  await rejectsWith(d.ping(), unreachable);
  await rejectsWith(d.inspectContainer("x"), unreachable);
  await rejectsWith(d.execTty("x", ["sh"], { cols: 80, rows: 24 }), unreachable);
});

/** Reads a connection to its end: resolves once the other side has closed it. */
async function endOf(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  while ((await conn.read(buf).catch(() => null)) !== null) { /* discard */ }
}

Deno.test("docker: an engine that never answers hits the deadline", async () => {
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir();
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  const path = `${dir}/silent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const conns: Deno.Conn[] = [];
  // Resolves as the client hangs up each connection: accept, say nothing, read to the end.
  const hungUp: Promise<void>[] = [];
  const accepting = (async () => {
    try {
      for await (const c of listener) {
        conns.push(c);
        hungUp.push(endOf(c));
      }
    } catch {
      // listener closed
    }
  })();
  cleanup.defer(async () => {
    listener.close();
    await accepting;
    for (const c of conns) c.close();
  });
  const d = new DockerClient({ socketPath: path, timeoutMs: 300 });
  cleanup.defer(() => d.close());
  const t0 = performance.now();
  await rejectsWith(d.ping(), (e) => {
    assert.equal(e.status, 0);
    // The deadline, and not some other failure, ended the call ...
    assert.match(e.message, /timed out after 300 ms/);
  });
  // ... not before it was due (a lower bound: a busy machine only makes the wait longer) ...
  const took = performance.now() - t0;
  assert.ok(took >= 280, `gave up after ${took} ms, before the 300 ms deadline`);
  // ... and it cut the connection rather than leaving it open to the silent engine.
  assert.equal(hungUp.length, 1, "the call reached the engine once");
  await hungUp[0];
  // The hijacked path has its own deadline for the upgrade answer.
  await rejectsWith(d.execTty("x", ["sh"], { cols: 80, rows: 24 }), (e) => {
    assert.equal(e.status, 0);
    assert.match(e.message, /timed out after 300 ms/);
  });
  await Promise.all(hungUp);
});

/**
 * A bare-bones engine on a unix socket that speaks raw HTTP/1.1 (Deno.serve refuses the
 * engine-style upgrade request with a body), closing after each answer.
 */
function fakeEngine(path: string, answer: (method: string, path: string) => Response | null) {
  const listener = Deno.listen({ transport: "unix", path });
  const conns: Deno.Conn[] = [];
  /** The requests left unanswered that the client then hung up, in order. */
  const hungUp: string[] = [];
  const serve = async (conn: Deno.Conn) => {
    let head = "";
    const buf = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      head += dec.decode(buf.subarray(0, n));
    }
    // fetch through a proxy-style unix client sends the absolute form; Go servers accept it.
    const [method, target] = head.split(" ");
    const res = answer(method, target.replace(/^http:\/\/docker/, ""));
    if (!res) {
      // Say nothing: the client's deadline must end it, by hanging up.
      await endOf(conn);
      hungUp.push(target);
      return;
    }
    const body = new Uint8Array(await res.arrayBuffer());
    const text =
      `HTTP/1.1 ${res.status} X\r\nContent-Type: ${res.headers.get("content-type")}\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    await conn.write(new Uint8Array([...enc.encode(text), ...body])).catch(() => {});
  };
  const accepting = (async () => {
    try {
      for await (const c of listener) {
        conns.push(c);
        serve(c);
      }
    } catch {
      // closed
    }
  })();
  const stop = async () => {
    listener.close();
    await accepting;
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed by the client already
      }
    }
  };
  return { stop, hungUp };
}

Deno.test("docker: a fake engine: stalled upgrade, odd error bodies", async () => {
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir();
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  const path = `${dir}/fake.sock`;
  const { stop, hungUp } = fakeEngine(path, (_method, target) => {
    if (target === "/v1.41/containers/c1/exec") return Response.json({ Id: "e1" }, { status: 201 });
    if (target === "/v1.41/exec/e1/start") return null;
    if (target === "/v1.41/containers/html/json") {
      return new Response("<html>proxy says no</html>", { status: 502 });
    }
    if (target === "/v1.41/containers/empty/json") return new Response("", { status: 500 });
    return Response.json({ message: "no such thing", cause: "x", response: 404 }, { status: 404 });
  });
  cleanup.defer(stop);
  const d = new DockerClient({ socketPath: path, timeoutMs: 300 });
  cleanup.defer(() => d.close());
  await rejectsWith(d.execTty("c1", ["sh"], { cols: 80, rows: 24 }), (e) => {
    assert.equal(e.status, 0);
    // The upgrade's own deadline ended it (the message names it), by hanging up.
    assert.equal(e.op, "exec tty");
    assert.match(e.message, /timed out after 300 ms/);
  });
  for (let i = 0; i < 100 && hungUp.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 20)); // the hang-up reaches the engine after
  }
  assert.deepEqual(hungUp, ["/v1.41/exec/e1/start"], "the stalled upgrade was hung up");
  await rejectsWith(d.inspectContainer("html"), (e) => {
    assert.equal(e.status, 502);
    assert.equal(e.engineMessage, "<html>proxy says no</html>");
  });
  await rejectsWith(d.inspectContainer("empty"), (e) => {
    assert.equal(e.status, 500);
    assert.equal(e.engineMessage, "HTTP 500");
  });
  await rejectsWith(d.startContainer("missing"), (e) => {
    assert.ok(isNotFound(e));
    assert.equal(e.engineMessage, "no such thing");
    assert.equal(e.op, "start missing");
  });
});

// ---------------------------------------------------------------- with the engine

engineTest("ping, version and API negotiation", async (d) => {
  await d.ping();
  const v = await d.version();
  assert.ok(v.Version, "version has a Version");
  assert.match(v.ApiVersion, /^\d+\.\d+$/);
  assert.match(await d.negotiate(), /^v1\.\d+$/);
});

engineTest(
  "negotiation waits for an engine that starts after us, and stops when told",
  async () => {
    await using cleanup = new AsyncDisposableStack();
    // The socket appears only after the first failed try, as an engine starting late would.
    const dir = await Deno.makeTempDir({ prefix: "pomodex-late-engine-" });
    cleanup.defer(() => Deno.remove(dir, { recursive: true }));
    const late = new DockerClient({ socketPath: `${dir}/docker.sock` });
    const never = new DockerClient({ socketPath: `${dir}/never.sock` });
    cleanup.defer(() => {
      late.close();
      never.close();
    });
    let retries = 0;
    const version = await late.negotiateWhenReachable({
      signal: AbortSignal.timeout(10_000),
      retryMs: 50,
      onRetry: () => retries++ === 0 && Deno.symlinkSync(engineSocketPath(), `${dir}/docker.sock`),
    });
    assert.match(version ?? "", /^v1\.\d+$/);
    assert.equal(retries, 1);

    const stop = new AbortController();
    let tries = 0;
    const gaveUp = await never.negotiateWhenReachable({
      signal: stop.signal,
      retryMs: 50,
      onRetry: () => ++tries === 3 && stop.abort(),
    });
    assert.equal(gaveUp, null);
    assert.equal(tries, 3);
  },
);

engineTest("volumes: create (idempotent), inspect, list by label, remove", async (d) => {
  const name = uniqueName();
  const labels = { ...LABELS, "pomodex.test.case": name };
  await using cleanup = new AsyncDisposableStack();
  // Set before the create, which may fail after the engine made the volume.
  cleanup.defer(async () => {
    await d.removeVolume(name, { force: true });
  });
  const v = await d.createVolume(name, labels);
  assert.equal(v.Name, name);
  assert.equal(v.Labels?.["pomodex.test.case"], name);
  assert.equal((await d.createVolume(name, labels)).Name, name, "second create is a no-op");
  assert.equal((await d.inspectVolume(name))?.Name, name);
  const listed = await d.listVolumes({ label: { "pomodex.test.case": name } });
  assert.deepEqual(listed.map((x) => x.Name), [name]);
  assert.equal(await d.removeVolume(name), true);
  assert.equal(await d.inspectVolume(name), null);
  assert.equal(await d.removeVolume(name), false, "removing twice says it was not there");
});

engineTest("containers: create with labels, env, volume, port, limits; lifecycle", async (d) => {
  const name = uniqueName();
  const vol = `${name}-vol`;
  await using cleanup = new AsyncDisposableStack();
  // Set before the create, which may fail after the engine made the volume.
  cleanup.defer(async () => {
    await d.removeVolume(vol, { force: true });
  });
  await d.createVolume(vol, LABELS);
  const { id } = await d.createContainer(name, {
    Image: await testImage(d),
    Entrypoint: ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
    Env: { GREETING: "hello world", EMPTY: "" },
    Labels: { ...LABELS, "pomodex.test.case": name },
    ExposedPorts: { "22/tcp": {} },
    HostConfig: {
      Binds: [`${vol}:/workspace`],
      PortBindings: { "22/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
      Memory: 256 * 1024 * 1024,
      NanoCpus: 500_000_000,
      PidsLimit: 128,
      RestartPolicy: { Name: "no" },
    },
  });
  cleanup.defer(async () => {
    await d.removeContainer(id, { force: true });
  });
  assert.match(id, /^[0-9a-f]{64}$/);

  await d.startContainer(id);
  await d.startContainer(id); // 304 from the engine: already running is fine
  const info = await d.inspectContainer(name) as ContainerInfo;
  assert.equal(info.State.Running, true);
  assert.equal(info.State.Status, "running");
  assert.equal(info.Config.Labels?.["pomodex.test.case"], name);
  assert.ok(info.Config.Env?.includes("GREETING=hello world"));
  assert.equal(info.HostConfig?.Memory, 256 * 1024 * 1024);
  assert.equal(info.HostConfig?.NanoCpus, 500_000_000);
  assert.equal(info.HostConfig?.PidsLimit, 128);
  const port = d.hostPortOf(info, "22/tcp");
  assert.ok(port && port > 1024 && port < 65536, `ephemeral port, got ${port}`);
  assert.equal(info.NetworkSettings.Ports?.["22/tcp"]?.[0].HostIp, "127.0.0.1");
  assert.equal(d.hostPortOf(info, "80/tcp"), null);

  assert.equal(await sh(d, id, 'printf %s "$GREETING"'), "hello world");
  await sh(d, id, "echo kept > /workspace/file");
  assert.equal(await sh(d, id, "cat /workspace/file"), "kept\n");

  const listed = await d.listContainers({ labels: { "pomodex.test.case": name } });
  assert.deepEqual(listed.map((c) => c.Id), [id]);
  assert.equal(listed[0].Labels?.["pomodex.test"], "1");

  await d.stopContainer(id, { timeoutSeconds: 5 });
  await d.stopContainer(id, { timeoutSeconds: 5 }); // 304: already stopped is fine
  const stopped = await d.inspectContainer(id);
  assert.equal(stopped?.State.Running, false);
  assert.deepEqual(await d.listContainers({ labels: { "pomodex.test.case": name } }), []);
  assert.equal(
    (await d.listContainers({ all: true, labels: { "pomodex.test.case": name } })).length,
    1,
  );
  await rejectsWith(d.killContainer(id), (e) => assert.equal(e.status, 409));

  await d.startContainer(id);
  await d.killContainer(id, "KILL");
  for (let i = 0; i < 50 && (await d.inspectContainer(id))?.State.Running; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await d.inspectContainer(id))?.State.Running, false);

  assert.equal(await d.removeContainer(id, { force: true }), true);
  assert.equal(await d.removeContainer(id, { force: true }), false);
  assert.equal(await d.inspectContainer(id), null);
  // The named volume outlives its container: that is the persistent workspace.
  assert.ok(await d.inspectVolume(vol));
});

engineTest("exec: stdout, stderr, exit code, env, user, workdir, stdin", async (d) => {
  await withContainer(d, async (id) => {
    const r = await d.exec(id, ["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.equal(r.exitCode, 3);
    assert.equal(dec.decode(r.stdout), "out\n");
    assert.equal(dec.decode(r.stderr), "err\n");

    const e = await d.exec(id, ["sh", "-c", 'echo "$A:$(id -u):$(pwd)"'], {
      env: { A: "b c" },
      user: "65534",
      workingDir: "/tmp",
    });
    assert.equal(dec.decode(e.stdout), "b c:65534:/tmp\n");

    const withStdin = await d.exec(id, ["sh", "-c", "tr a-z A-Z; echo done"], {
      stdin: enc.encode("hello stdin\n"),
    });
    assert.equal(withStdin.exitCode, 0);
    assert.equal(dec.decode(withStdin.stdout), "HELLO STDIN\ndone\n");

    // Large both ways: frames span many reads, and stdin is written while output is read.
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => 97 + (i % 26));
    const echoed = await d.exec(id, ["cat"], { stdin: big, timeoutMs: 60_000 });
    assert.equal(echoed.exitCode, 0);
    assert.equal(echoed.stdout.length, big.length);
    assert.deepEqual(echoed.stdout, big);

    // A missing program: Podman reports 127 (not found), Docker 126 (cannot execute).
    const podman = (await d.version()).Components?.some((c) => /podman/i.test(c.Name));
    const r2 = await d.exec(id, ["/nonexistent-binary"]);
    assert.equal(r2.exitCode, podman ? 127 : 126);
  });
});

engineTest("exec: a deadline kills the process", async (d) => {
  await withContainer(d, async (id) => {
    await rejectsWith(d.exec(id, ["sleep", "31"], { timeoutMs: 1_000 }), (e) => {
      assert.equal(e.status, 0);
      assert.match(e.message, /timed out after 1000 ms/);
      // Killing it means it was still running: the call ended on the deadline, not when
      // the sleep did.
      assert.match(e.message, /killed 1 process/);
    });
    const left = (await processes(d, id)).filter((p) => p.includes("sleep 31"));
    assert.deepEqual(left, []);
  });
});

engineTest("execTty: echo, resize, stty size, exit code", async (d) => {
  await withContainer(d, async (id) => {
    const tty = await d.execTty(id, ["/bin/sh"], {
      cols: 120,
      rows: 40,
      env: { TERM: "xterm-256color", PS1: "$ " },
    });
    // A scope of its own: the write after it must meet a closed session.
    {
      await using cleanup = new AsyncDisposableStack();
      cleanup.defer(() => tty.close());
      const reader = tty.readable.getReader();
      cleanup.defer(() => reader.releaseLock());
      const seen = { text: "" };
      await tty.write(enc.encode("echo $((6*7))\n"));
      // Typed-ahead input is echoed before the shell prints its next prompt, so an answer
      // may follow "$ " rather than a line break.
      await readUntil(reader, /(\r\n|\$ )42\r\n/, seen);
      await tty.write(enc.encode("stty size\n"));
      await readUntil(reader, /(\r\n|\$ )40 120\r\n/, seen); // the size asked for at start
      await tty.resize(100, 30);
      await tty.write(enc.encode("stty size\n"));
      await readUntil(reader, /(\r\n|\$ )30 100\r\n/, seen);
      await tty.write(enc.encode("exit 5\n"));
      while (!(await reader.read()).done) { /* drain to the end */ }
      assert.equal(await tty.exited, 5);
    }
    await rejectsWith(tty.write(enc.encode("x")), (e) => assert.equal(e.status, 0));
  });
});

engineTest("execTty: close() hangs up and leaves no process behind", async (d) => {
  await withContainer(d, async (id) => {
    // As root and as another user: root in an unprivileged container cannot read another
    // user's /proc/PID/environ, so the hang-up must scan as the session's user too.
    const sessions: [string, string | undefined][] = [
      ["/bin/sh", undefined],
      ["bash", undefined],
      ["/bin/sh", "nobody"],
    ];
    for (const [shell, user] of sessions) {
      const tty: TtySession = await d.execTty(id, [shell], { cols: 80, rows: 24, user });
      const reader = tty.readable.getReader();
      const seen = { text: "" };
      await tty.write(
        enc.encode("sleep 4343 & nohup sleep 4444 >/dev/null 2>&1 & echo $((1+1))x\n"),
      );
      await readUntil(reader, /2x/, seen);
      await tty.write(enc.encode("sleep 4242\n"));
      // The foreground job must exist before we hang up, or we test nothing.
      for (let i = 0; i < 50; i++) {
        if ((await processes(d, id)).some((p) => p.includes("sleep 4242"))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok((await processes(d, id)).some((p) => p.includes("sleep 4242")), `${shell}: no job`);

      const t0 = performance.now();
      await tty.close();
      await tty.close(); // idempotent
      const took = performance.now() - t0;
      const code = await tty.exited;
      assert.ok(code === null || code !== 0, `${shell}: exit ${code}`);
      while (!(await reader.read()).done) { /* the readable ends too */ }

      const left = await processes(d, id);
      assert.deepEqual(
        left.filter((p) => /sleep 4242|sleep 4343/.test(p) || p.trim().endsWith(shell)),
        [],
        `${shell}: left behind ${JSON.stringify(left)}`,
      );
      // nohup asked to survive a hang-up, as it would over SSH.
      assert.ok(left.some((p) => p.includes("sleep 4444")), `${shell}: nohup job gone`);
      const nohupPid = left.find((p) => p.includes("sleep 4444"))?.split(" ")[0];
      await sh(d, id, `kill ${nohupPid}`);
      console.log(`  ${shell}: close() took ${took.toFixed(0)} ms, exit code ${code}`);
    }
  });
});

engineTest("archive: put a tar, get it back as a stream", async (d) => {
  await withContainer(d, async (id) => {
    const tar = makeTar([
      { name: "pomodex-arch", type: "dir", mode: 0o750 },
      { name: "pomodex-arch/hello.txt", data: "hello archive\n", mode: 0o640 },
    ]);
    await d.putArchive(id, "/tmp", tar);
    assert.equal(await sh(d, id, "cat /tmp/pomodex-arch/hello.txt"), "hello archive\n");
    assert.equal(await sh(d, id, "stat -c %a /tmp/pomodex-arch/hello.txt"), "640\n");

    // A stream body too, written in small pieces.
    const streamed = makeTar([{ name: "streamed.bin", data: new Uint8Array(100_000).fill(1) }]);
    let at = 0;
    await d.putArchive(
      id,
      "/tmp/pomodex-arch",
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= streamed.length) return c.close();
          c.enqueue(streamed.slice(at, at + 7_000));
          at += 7_000;
        },
      }),
    );

    const back = readTar(await collect(await d.getArchive(id, "/tmp/pomodex-arch")));
    const byName = new Map(back.map((e) => [e.name.replace(/\/$/, ""), e]));
    assert.equal(dec.decode(byName.get("pomodex-arch/hello.txt")?.data), "hello archive\n");
    assert.equal(byName.get("pomodex-arch/streamed.bin")?.data.length, 100_000);
    assert.equal(byName.get("pomodex-arch")?.type, "dir");

    await rejectsWith(d.getArchive(id, "/no/such/path"), (e) => assert.ok(isNotFound(e)));
    // Docker answers 404 for a missing target directory, Podman creates it; both refuse a file.
    await rejectsWith(d.putArchive(id, "/etc/hostname", tar), (e) => assert.ok(e.status >= 400));
  });
});

engineTest("images: commit, tag, push, remove, pull back, remove", async (d) => {
  const registry = testRegistry();
  const registryUp = await fetch(`http://${registry}/v2/`).then(
    (r) => r.body?.cancel(),
    () => false,
  );
  assert.notEqual(registryUp, false, `no registry at ${registry}; start one (see ENVIRONMENT.md)`);
  const repo = `${registry}/${uniqueName()}`;
  const refs = [`${repo}:c1`, `${repo}:c2`];
  let fromPull = "";
  await using cleanup = new AsyncDisposableStack();
  cleanup.defer(async () => {
    for (const r of [...refs, fromPull].filter(Boolean)) await d.removeImage(r, { force: true });
  });
  await withContainer(d, async (id) => {
    await sh(d, id, "echo snapshot > /etc/pomodex-snapshot");
    const { id: imageId } = await d.commitContainer(id, {
      repo,
      tag: "c1",
      comment: "pomodex test",
      pause: true,
    });
    assert.ok(imageId);
    assert.ok((await d.inspectImage(refs[0]))?.RepoTags?.includes(refs[0]));
  });

  await d.tagImage(refs[0], repo, "c2");
  assert.ok(await d.inspectImage(refs[1]));
  const events: string[] = [];
  await d.pushImage(refs[1], { onProgress: (p) => p.status && events.push(p.status) });
  assert.ok(events.length > 0, "push reported progress");

  assert.equal(await d.removeImage(refs[0]), true);
  assert.equal(await d.removeImage(refs[1]), true);
  assert.equal(await d.removeImage(refs[1]), false);
  assert.equal(await d.inspectImage(refs[1]), null);

  await d.pullImage(refs[1]);
  const pulled = await d.inspectImage(refs[1]);
  assert.ok(pulled, "pulled image is there");
  fromPull = refs[1];

  // A scope of its own: the container must be gone before its image can be removed below.
  {
    await using container = new AsyncDisposableStack();
    const name = uniqueName();
    const { id } = await d.createContainer(name, {
      Image: refs[1],
      Entrypoint: ["cat", "/etc/pomodex-snapshot"],
      Labels: LABELS,
    });
    container.defer(async () => {
      await d.removeContainer(id, { force: true });
    });
    await d.startContainer(id);
    for (let i = 0; i < 50 && (await d.inspectContainer(id))?.State.Running; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await d.inspectContainer(id))?.State.ExitCode, 0, "snapshot file came back");
  }

  assert.equal(await d.removeImage(refs[1]), true);
  fromPull = "";

  // Failures arrive inside a 200 stream (pull) or as a status (push of a missing image).
  await rejectsWith(d.pullImage(`${repo}:never-pushed`), (e) => {
    assert.ok(isNotFound(e), `pull of a missing tag is a 404, got ${e.status}`);
    assert.match(e.engineMessage, /manifest unknown/);
  });
  await rejectsWith(d.pushImage(`${repo}:not-local`), (e) => assert.ok(isNotFound(e)));
});

engineTest("images: push to a dead registry fails with the engine's reason", async (d) => {
  await using cleanup = new AsyncDisposableStack();
  // Nothing listens there, and nothing can start to while the test holds the address (a
  // fixed port "where nothing listens" is only dead until something listens there).
  const dead = refusingAddress();
  cleanup.defer(() => dead.close());
  const ref = `${dead.address}/${uniqueName()}:t`;
  const { name, tag } = splitRef(ref);
  await d.tagImage(await testImage(d), name, tag);
  cleanup.defer(async () => {
    await d.removeImage(ref);
  });
  await rejectsWith(d.pushImage(ref, { timeoutMs: 60_000 }), (e) => {
    assert.equal(e.status, 500);
    // The engine's own words: which registry, and why.
    assert.ok(e.engineMessage.includes(dead.address), e.engineMessage);
    assert.match(e.engineMessage, /connection refused/);
  });
});

engineTest("errors: missing things, and the engine's own message", async (d) => {
  const missing = uniqueName();
  assert.equal(await d.inspectContainer(missing), null);
  assert.equal(await d.inspectImage(`localhost/${missing}:latest`), null);
  assert.equal(await d.inspectVolume(missing), null);
  assert.equal(await d.removeContainer(missing), false);
  assert.equal(await d.removeImage(`localhost/${missing}:latest`), false);

  const err = await rejectsWith(
    d.createContainer(missing, { Image: `localhost/${missing}:latest`, Labels: LABELS }),
    (e) => {
      assert.equal(e.status, 404);
      assert.ok(isNotFound(e));
      assert.match(e.engineMessage, /no such image/i);
      assert.ok(e.engineMessage.includes(missing), e.engineMessage);
      assert.equal(e.op, `create container ${missing}`);
    },
  );
  assert.ok(err.message.includes(err.engineMessage));
  await rejectsWith(d.startContainer(missing), (e) => assert.ok(isNotFound(e)));
  await rejectsWith(d.stopContainer(missing), (e) => assert.ok(isNotFound(e)));
  await rejectsWith(d.exec(missing, ["true"]), (e) => assert.ok(isNotFound(e)));
  await rejectsWith(
    d.execTty(missing, ["sh"], { cols: 80, rows: 24 }),
    (e) => assert.ok(isNotFound(e)),
  );
  assert.equal(await d.inspectContainer(missing), null, "a failed create leaves nothing");
});

engineTest("no leftovers from this file", async (d) => {
  // Runs last: anything labelled by these tests and still here was leaked by one of them.
  const leftovers = await d.listContainers({ all: true, labels: { "pomodex.test.run": RUN } });
  assert.deepEqual(leftovers.map((c) => c.Names), []);
  const vols = await d.listVolumes({ label: { "pomodex.test.run": RUN } });
  assert.deepEqual(vols.map((v) => v.Name), []);
});
