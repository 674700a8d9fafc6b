// The web terminal against the bare engine, in the same run on the same container:
// keystroke round trip (one byte to `cat` in raw mode and back) and bulk output (`cat` of a
// 50 MB file), once through the terminal proxy (a WebSocket to the proxy process that
// `main.ts` starts, which holds an exec TTY) and once over an exec TTY on the engine socket
// directly. For the keystroke's round trip the direct path is the floor: the proxy only adds
// hops to it. For bulk output it is not a ceiling (through the proxy the work is split over two
// processes): that is a bare relay process (bench/relay.ts), read the same way as the proxy.
// The keystrokes also go, over a direct exec TTY, into two bare containers of the sandbox
// image (bench/bare.ts): one without isolation (default network, named volume: the floor
// from before isolation) and one with the same isolation as a sandbox (own network, ext4
// workspace, same hardening), interleaved in blocks with the other two paths. The proxy into
// an isolated sandbox against the floor without isolation is the budget; the two bare
// containers side by side show what isolation itself costs on this path.
import type { DockerClient } from "@/infra/docker/mod.ts";
import { generateSshKeyPair } from "@/projects/ssh-keys.ts";
import { BareHost, type BareIsolation, runBareSandbox } from "./bare.ts";
import type { TtySession } from "@/infra/docker/types.ts";
import { hangUp, SESSION_VAR } from "@/terminal/hangup.ts";
import { SHELL_COMMAND, SHELL_DIR, SHELL_ENV, SHELL_USER } from "@/terminal/session.ts";
import { requireEngine } from "@/tests/helpers/engine.ts";
import { sandboxImage } from "@/tests/helpers/env.ts";
import { signUp } from "@/tests/helpers/users.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, row } from "./stats.ts";
import { percentile } from "@/tests/helpers/stats.ts";

const KEYSTROKES = 500;
/** The keystrokes of each path go in this many blocks, the paths taking turns. */
const KEY_BLOCKS = 10;
const FILE_BYTES = 50_000_000;
const FILE = "/tmp/pomodex-bench-50mb.txt";
const THROUGHPUT_ROUNDS = 3;
const REOPENS = 5;

/** A terminal either way: bytes in, bytes out. */
interface Term extends AsyncDisposable {
  send(bytes: Uint8Array): void;
  /** Called with every chunk the terminal prints. */
  onData: (chunk: Uint8Array) => void;
  /** `await using` calls it at the end of the scope. */
  close(): Promise<void>;
}

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchTerminal(): Promise<{ rows: BenchRow[] }> {
  const image = sandboxImage();
  // Torn down in reverse: the project, the relay, the bare containers (the plain one and its
  // volume, then the isolated one and its network and workspace), the bare floors' host, the
  // engine client, the server.
  await using server = await startBenchServer("terminal", {
    TERMINAL_PROXY: "true",
    // Port 0: the proxy's "listening" line says where it is (no probed port to lose).
    TERMINAL_PROXY_PORT: "0",
    ...(Deno.env.get("DOCKER_HOST") ? { DOCKER_HOST: Deno.env.get("DOCKER_HOST")! } : {}),
  });
  using engine = await requireEngine();
  const headers = { ...(await signUp(server.url)).auth, "content-type": "application/json" };
  const bareName = `pomodex-bench-${crypto.randomUUID().slice(0, 8)}`;
  const isoName = `pomodex-bench-${crypto.randomUUID().slice(0, 8)}`;
  await using host = await BareHost.open(engine);
  await using cleanup = new AsyncDisposableStack();
  let iso: BareIsolation | null = null;
  cleanup.defer(async () => {
    await engine.removeContainer(bareName, { force: true }).catch(() => false);
    await engine.removeVolume(bareName, { force: true }).catch(() => false);
    await engine.removeContainer(isoName, { force: true }).catch(() => false);
    if (iso) await host.remove(iso);
  });
  let relay: { port: number; stop(): Promise<void> } | null = null;
  cleanup.defer(async () => {
    await relay?.stop();
  });
  const keys = await generateSshKeyPair("bench");
  await engine.createVolume(bareName, { "pomodex.bench": "1" });
  const bare = await runBareSandbox(engine, bareName, image, keys);
  iso = await host.isolate(isoName);
  const bareIsolated = await runBareSandbox(engine, isoName, image, keys, iso);
  const created = await fetch(`${server.url}/projects`, {
    method: "POST",
    headers,
    body: JSON.stringify({ name: "bench-terminal" }),
  });
  const project = await created.json();
  if (created.status !== 201) throw new Error(`create: ${JSON.stringify(project)}`);
  const projectId = project.id as string;
  cleanup.defer(async () => {
    await fetch(`${server.url}/projects/${projectId}`, { method: "DELETE", headers })
      .then((r) => r.body?.cancel()).catch(() => {});
  });
  const [{ containerId }] = await server.db.sql<{ containerId: string }[]>`
    SELECT container_id FROM projects WHERE id = ${projectId}`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const proxyPort = await Promise.race([
    server.terminalPort,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("the terminal proxy did not say where it listens")),
        30_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  await waitForProxy(proxyPort);
  const made = await engine.exec(containerId, [
    "sh",
    "-c",
    `head -c ${FILE_BYTES / 4 * 3} /dev/urandom | base64 -w 100 > ${FILE}`,
  ], { user: SHELL_USER, timeoutMs: 120_000 });
  if (made.exitCode !== 0) throw new Error("could not write the 50 MB file");

  const openProxy = async () => {
    const res = await fetch(`${server.url}/projects/${projectId}/terminal-ticket`, {
      method: "POST",
      headers,
    });
    const { ticket } = await res.json();
    return await proxyTerm(`ws://127.0.0.1:${proxyPort}/terminal/${projectId}?ticket=${ticket}`);
  };
  const openDirect = () => directTerm(engine, containerId);
  relay = await startRelay(engine.socketPath, containerId);
  const relayUrl = `ws://127.0.0.1:${relay.port}/`;
  const openRelay = () => proxyTerm(relayUrl);

  const reopen = { proxy: [] as number[], direct: [] as number[] };
  const reopenBy = {
    proxy: async () => reopen.proxy.push(await untilShellAnswers(openProxy)),
    direct: async () => reopen.direct.push(await untilShellAnswers(openDirect)),
  };
  for (let i = 0; i < REOPENS; i++) {
    // The paths take turns going first. Each closed shell is hung up in the background:
    // let that finish before the next open, so that neither path is timed while the
    // other's hang-up runs.
    for (const path of inTurn(["proxy", "direct"] as const, i)) {
      await reopenBy[path]();
      await sleep(1_500);
    }
  }
  const rtt = await keystrokes({
    proxy: openProxy,
    direct: openDirect,
    bare: () => directTerm(engine, bare.id),
    bareIsolated: () => directTerm(engine, bareIsolated.id),
  });
  const mbps = { proxy: [] as number[], relay: [] as number[], direct: [] as number[] };
  const open = { proxy: openProxy, relay: openRelay, direct: openDirect };
  for (let i = 0; i < THROUGHPUT_ROUNDS; i++) {
    for (const path of inTurn(["proxy", "relay", "direct"] as const, i)) {
      mbps[path].push(await bulk(open[path]));
    }
  }
  const median = (xs: number[]) => percentile(xs, 50);
  const us = (xs: number[], p: number) => percentile(xs, p) * 1000;
  const rows = [
    row(
      `keystroke RTT p50 via proxy into an isolated sandbox (${KEYSTROKES} keys), vs direct exec into it`,
      us(rtt.proxy, 50),
      "µs",
      us(rtt.direct, 50),
    ),
    row(
      "keystroke RTT p99 via proxy, vs direct exec",
      us(rtt.proxy, 99),
      "µs",
      us(rtt.direct, 99),
    ),
    row("keystroke RTT p50 direct exec (floor)", us(rtt.direct, 50), "µs"),
    row("keystroke RTT p99 direct exec (floor)", us(rtt.direct, 99), "µs"),
    // For a rate the ceiling is the bare relay: the same two processes, the same frames
    // read the same way, and nothing else. Ratio = proxy / relay (1.0 = nothing lost).
    row(
      `cat 50 MB via proxy (median of ${THROUGHPUT_ROUNDS}), vs a bare relay process`,
      median(mbps.proxy),
      "MB/s",
      median(mbps.relay),
    ),
    row(
      "cat 50 MB through a bare relay process: exec TTY → WebSocket, nothing else (ceiling)",
      median(mbps.relay),
      "MB/s",
    ),
    row(
      "cat 50 MB direct exec, read in the bench process (one process: not a ceiling)",
      median(mbps.direct),
      "MB/s",
    ),
    row(
      `open → shell answers, via proxy: ticket, validation, exec, login shell (p50 of ${REOPENS})`,
      median(reopen.proxy),
      "ms",
      median(reopen.direct),
    ),
    row(
      "open → shell answers, direct exec of the same shell (floor)",
      median(reopen.direct),
      "ms",
    ),
  ];
  rows.push(
    row(
      "keystroke RTT p50 via proxy into an isolated sandbox, vs direct exec into a bare container without isolation",
      us(rtt.proxy, 50),
      "µs",
      us(rtt.bare, 50),
    ),
    row(
      "keystroke RTT p99 via proxy, vs direct exec into a bare container without isolation",
      us(rtt.proxy, 99),
      "µs",
      us(rtt.bare, 99),
    ),
    row(
      "keystroke RTT p50 direct exec, bare container with isolation vs without (isolation's own cost)",
      us(rtt.bareIsolated, 50),
      "µs",
      us(rtt.bare, 50),
    ),
    row(
      "keystroke RTT p99 direct exec, bare container with isolation vs without",
      us(rtt.bareIsolated, 99),
      "µs",
      us(rtt.bare, 99),
    ),
    row(
      "keystroke RTT p50 direct exec, Pomodex sandbox vs bare container with the same isolation",
      us(rtt.direct, 50),
      "µs",
      us(rtt.bareIsolated, 50),
    ),
    row(
      "keystroke RTT p50 direct exec, bare container without isolation (floor)",
      us(rtt.bare, 50),
      "µs",
    ),
    row(
      "keystroke RTT p99 direct exec, bare container without isolation (floor)",
      us(rtt.bare, 99),
      "µs",
    ),
  );
  console.error(
    `terminal: RTT p50 ${rows[0].value} vs ${rows[2].value} µs (x${rows[0].ratio}), ` +
      `p99 ${rows[1].value} vs ${rows[3].value} µs (x${rows[1].ratio}); ` +
      `cat ${rows[4].value} vs ${rows[5].value} MB/s (x${rows[4].ratio}), direct ${
        rows[6].value
      } MB/s`,
  );
  return { rows };
}

/** bench/relay.ts in a process of its own, for one container. */
async function startRelay(socketPath: string, containerId: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      new URL("./relay.ts", import.meta.url).pathname,
      socketPath,
      containerId,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(
    new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>,
  ).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { done, value } = await lines.read();
    if (done) throw new Error("the relay exited before listening");
    first += value;
  }
  // Keep reading, so that the relay never blocks on a full pipe.
  (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })().catch(() => {});
  return {
    port: JSON.parse(first.split("\n")[0]).port as number,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** The paths in round `i`'s order: each goes first in turn. */
function inTurn<T>(paths: readonly T[], i: number): T[] {
  return paths.map((_, k) => paths[(i + k) % paths.length]);
}

/**
 * From asking for a terminal to the new shell running a command: what reopening a closed
 * tab costs. The command's marker is built by printf, so its echo does not match.
 */
async function untilShellAnswers(open: () => Promise<Term>): Promise<number> {
  const started = performance.now();
  await using term = await open();
  const out = collector(term);
  term.send(enc.encode("printf 'UP%s\\n' 1\n"));
  await out.until((s) => s.includes("UP1"), 15_000);
  // Taken before the scope's end closes the terminal: the close is not timed.
  return performance.now() - started;
}

/**
 * One byte at a time to `cat` on a raw tty; each must come back before the next goes. Every
 * path's terminal is opened first; then the paths take turns, a block of keys each, so that
 * a slow moment of the machine falls on all of them alike.
 */
async function keystrokes<K extends string>(
  paths: Record<K, () => Promise<Term>>,
): Promise<Record<K, number[]>> {
  const names = Object.keys(paths) as K[];
  const open: { name: K; term: Term; out: ReturnType<typeof collector> }[] = [];
  // Every terminal opened is closed at the end, in the order they were opened.
  await using cleanup = new AsyncDisposableStack();
  cleanup.defer(async () => {
    for (const t of open) await t.term.close();
  });
  for (const name of names) {
    const term = await paths[name]();
    const out = collector(term);
    open.push({ name, term, out });
    // The marker is built by printf, so the echoed command line does not match it.
    term.send(enc.encode("stty raw -echo; printf 'READY%s\\n' 1; exec cat\n"));
    await out.until((s) => s.includes("READY1"), 15_000);
  }
  await sleep(200); // let cat start reading
  const samples = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<
    K,
    number[]
  >;
  const keys = async (t: (typeof open)[number], n: number, keep: boolean) => {
    for (let i = 0; i < n; i++) {
      const key = 97 + (i % 26);
      t.out.reset();
      const started = performance.now();
      t.term.send(new Uint8Array([key]));
      await t.out.untilByte(key, 5_000);
      if (keep) samples[t.name].push(performance.now() - started);
    }
  };
  for (const t of open) await keys(t, 20, false); // the first ones warm up
  for (let b = 0; b < KEY_BLOCKS; b++) {
    for (let k = 0; k < open.length; k++) {
      await keys(open[(b + k) % open.length], KEYSTROKES / KEY_BLOCKS, true);
    }
  }
  return samples;
}

/** MB/s of `cat` of the 50 MB file, until the shell's end marker arrives, on a new terminal. */
async function bulk(openTerm: () => Promise<Term>): Promise<number> {
  await using term = await openTerm();
  const out = collector(term);
  term.send(enc.encode("stty -echo; printf 'READY%s\\n' 1\n"));
  await out.until((s) => s.includes("READY1"), 15_000);
  out.reset();
  const started = performance.now();
  term.send(enc.encode(`cat ${FILE}; printf 'END%s\\n' 42\n`));
  await out.until((s) => s.includes("END42"), 300_000);
  const seconds = (performance.now() - started) / 1000;
  return out.bytes / 1e6 / seconds;
}

/** Counts bytes, keeps the last `keep` characters, and lets a caller wait on them. */
function collector(term: Term, keep = 4096) {
  const dec = new TextDecoder();
  let tail = "";
  let last: Uint8Array = new Uint8Array(0);
  let wake: (() => void) | null = null;
  const state = {
    bytes: 0,
    reset() {
      tail = "";
      state.bytes = 0;
      last = new Uint8Array(0);
    },
    async until(test: (tail: string) => boolean, timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (!test(tail)) {
        if (Date.now() > deadline) throw new Error(`terminal: timed out; last output ${tail}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    async untilByte(byte: number, timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (!last.includes(byte)) {
        if (Date.now() > deadline) throw new Error("terminal: a keystroke did not come back");
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
  term.onData = (chunk) => {
    state.bytes += chunk.length;
    last = chunk;
    tail = (tail + dec.decode(chunk, { stream: true })).slice(-keep);
    const w = wake;
    wake = null;
    w?.();
  };
  return state;
}

async function proxyTerm(url: string): Promise<Term> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const term: Term = {
    send: (bytes) => ws.send(bytes),
    onData: () => {},
    close: async () => {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = new Promise((r) => ws.addEventListener("close", r));
      ws.close();
      await closed;
    },
    [Symbol.asyncDispose]: () => term.close(),
  };
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") term.onData(new Uint8Array(e.data));
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onclose = (e) => reject(new Error(`the terminal closed: ${e.code} ${e.reason}`));
  });
  return term;
}

async function directTerm(engine: DockerClient, containerId: string): Promise<Term> {
  const id = crypto.randomUUID();
  const tty: TtySession = await engine.execTty(containerId, SHELL_COMMAND, {
    user: SHELL_USER,
    env: { ...SHELL_ENV, [SESSION_VAR]: id },
    workingDir: SHELL_DIR,
    cols: 80,
    rows: 24,
  });
  const term: Term = {
    send: (bytes) => void tty.write(bytes).catch(() => {}),
    onData: () => {},
    close: async () => {
      await hangUp(engine, containerId, `${SESSION_VAR}=${id}`, SHELL_USER);
      await tty.close();
    },
    [Symbol.asyncDispose]: () => term.close(),
  };
  (async () => {
    for await (const chunk of tty.readable) term.onData(chunk);
  })().catch(() => {});
  return term;
}

async function waitForProxy(port: number) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the terminal proxy did not listen on ${port}`);
}

if (import.meta.main) {
  const { rows } = await benchTerminal();
  console.log(JSON.stringify(rows, null, 2));
}
