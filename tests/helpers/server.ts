/**
 * The real server (main.ts) as a child process, as production runs it: its own process,
 * a clean environment, a port of its own, killed with a real signal. The in-process
 * variants are createTestApp (./app.ts: the app without a socket) and startDashboardServer
 * (./browser.ts: main.ts start() on a port a browser can reach).
 */

import { engineSocketPath } from "./engine.ts";
import { whoAnswers } from "./ports.ts";
import { messageOf } from "@/core/errors.ts";
import { sandboxImage } from "./env.ts";

const root = new URL("../../", import.meta.url).pathname;
const mainTs = `${root}main.ts`;
const denoJson = `${root}deno.json`;

export interface LogLine {
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface ServerProcess extends AsyncDisposable {
  name: string;
  pid: number;
  port: number;
  url: string;
  /** warn and error lines (parsed), and a count of all lines by level. */
  problems: LogLine[];
  levels: Record<string, number>;
  /** The last lines of output, raw, for a failure message. */
  tail(): string;
  /** Resident memory now, MB (from /proc/<pid>/status), null once the process is gone. */
  rssMb(): number | null;
  /**
   * The terminal proxy child's port, once its "terminal proxy listening" line shows up
   * (TERMINAL_PROXY=true; with TERMINAL_PROXY_PORT=0 it binds a port of its own choosing).
   */
  terminalPort: Promise<number>;
  /** Resolves when a log line whose msg matches shows up (or rejects after the timeout). */
  waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<LogLine>;
  kill(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /**
   * SIGTERM, then SIGKILL after graceMs; safe to call twice or after a kill. `await using`
   * calls it (with the default grace) at the end of the scope.
   */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  exited: Promise<Deno.CommandStatus>;
}

const KEEP_LINES = 200;

/**
 * What a server needs from this process's environment: deno's caches and tools, and the
 * engine and sandbox image the test run uses (scripts/test.sh exports them).
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { DOCKER_HOST: `unix://${engineSocketPath()}` };
  // What reaching the npm registry needs (deno bundle fetches esbuild on a cold cache):
  // the CA and proxy settings of a machine behind a TLS-inspecting proxy.
  const network = [
    "NODE_EXTRA_CA_CERTS",
    "DENO_CERT",
    "DENO_TLS_CA_STORE",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "NPM_CONFIG_REGISTRY",
  ];
  for (
    const k of [
      "PATH",
      "HOME",
      "DENO_DIR",
      "XDG_CACHE_HOME",
      "TMPDIR",
      // The run's isolation settings (Podman cannot run sandboxes in a user namespace).
      "SANDBOX_USERNS",
      ...network,
    ]
  ) {
    const v = Deno.env.get(k);
    if (v) env[k] = v;
  }
  // The run's image, never the config's default one.
  env.SANDBOX_IMAGE = sandboxImage();
  return env;
}

/**
 * Spawns `deno run -A main.ts` with a clean environment (only `env` plus PATH/HOME), PORT=0
 * on loopback, and waits for its "listening" line. stdout and stderr are drained for the
 * whole life of the process, so it never blocks on a full pipe. Its egress proxy (Squid)
 * gets a free port of its own unless `env` names one or turns it off: servers that run at
 * once (or one after another, while a killed one's Squid dies) never fight over 3128.
 */
export async function startServer(
  env: Record<string, string>,
  opts: StartOptions = {},
): Promise<ServerProcess> {
  if (env.EGRESS_PROXY === "off" || env.EGRESS_PROXY_PORT) return await startOnce(env, opts);
  // Squid's port is a number it is given, free a moment ago; if something else took it
  // before Squid bound it, this server has no egress proxy (and logs an error): start it
  // again on another port.
  for (let attempt = 1;; attempt++) {
    const port = freeProxyPort();
    const server = await startOnce({ ...env, EGRESS_PROXY_PORT: String(port) }, opts);
    const egressFailed = () => server.problems.some((l) => /^egress/.test(String(l.msg)));
    const who = await whoAnswers(port, 30_000, egressFailed);
    const taken = who === "something else" ||
      server.problems.some((l) => /taken|in use/i.test(JSON.stringify(l)));
    if (!taken || attempt >= 3) return server; // Squid's, or a failure a new port won't fix
    console.warn(`${server.name}: port ${port} was taken before Squid bound it; another one`);
    await server.stop();
  }
}

interface StartOptions {
  name?: string;
  timeoutMs?: number;
  /** Extra flags for `deno run` (diagnostics, e.g. --preload or --v8-flags). */
  denoArgs?: string[];
  /** Another entry point than main.ts (a diagnostic wrapper). */
  script?: string;
  /** Sees the info lines that are otherwise only counted. */
  onInfo?: (line: string) => void;
}

async function startOnce(env: Record<string, string>, opts: StartOptions): Promise<ServerProcess> {
  const name = opts.name ?? "server";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", denoJson, ...(opts.denoArgs ?? []), opts.script ?? mainTs],
    cwd: root,
    clearEnv: true,
    env: {
      ...baseEnv(),
      HOST: "127.0.0.1",
      PORT: "0",
      TERMINAL_PROXY: "false",
      CRON: "true",
      LOG_LEVEL: "info",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const lines: string[] = [];
  const problems: LogLine[] = [];
  const levels: Record<string, number> = {};
  const waiters = new Set<(line: LogLine) => void>();
  let resolvePort!: (port: number) => void;
  const portSeen = new Promise<number>((r) => resolvePort = r);
  let resolveTerminalPort!: (port: number) => void;
  const terminalPort = new Promise<number>((r) => resolveTerminalPort = r);

  const onLine = (raw: string) => {
    if (!raw) return;
    lines.push(raw);
    if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
    // Cheap for the thousands of request lines a load test makes: parse only the rare ones.
    const level = /"level":"(\w+)"/.exec(raw)?.[1] ?? "raw";
    levels[level] = (levels[level] ?? 0) + 1;
    const listening = raw.includes('"msg":"listening"') ||
      raw.includes('"msg":"terminal proxy listening"');
    if (level === "info" && !listening && waiters.size === 0) {
      if (opts.onInfo) opts.onInfo(raw);
      return;
    }
    let parsed: LogLine;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = { level: "raw", msg: raw };
    }
    if (level !== "info") problems.push(parsed);
    if (parsed.msg === "listening" && typeof parsed.url === "string") {
      resolvePort(Number(new URL(parsed.url).port));
    }
    if (parsed.msg === "terminal proxy listening" && typeof parsed.url === "string") {
      resolveTerminalPort(Number(new URL(parsed.url).port));
    }
    for (const w of waiters) w(parsed);
  };
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    try {
      for await (const chunk of stream.pipeThrough(textDecoder())) {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      }
    } catch { /* the process is gone */ }
    onLine(buf);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await drained;
    return s;
  });

  const tail = () => lines.slice(-40).join("\n");
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    portSeen,
    exited.then((s) => {
      throw new Error(`${name} exited (${s.code}) before listening:\n${tail()}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${name} not listening in ${timeoutMs} ms`)),
        timeoutMs,
      );
    }),
  ]).catch(async (err) => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await exited;
    throw err;
  }).finally(() => clearTimeout(timer));

  let done = false;
  exited.then(() => done = true);
  const signal = (sig: Deno.Signal) => {
    if (done) return;
    try {
      child.kill(sig);
    } catch { /* exited meanwhile */ }
  };

  const stop = async (graceMs = 10_000) => {
    signal("SIGTERM");
    const t = setTimeout(() => {
      for (const pid of descendantsOf(child.pid)) killPid(pid);
      signal("SIGKILL");
    }, graceMs);
    const s = await exited;
    clearTimeout(t);
    return s;
  };

  return {
    name,
    pid: child.pid,
    port,
    url: `http://127.0.0.1:${port}`,
    problems,
    levels,
    tail,
    terminalPort,
    rssMb() {
      try {
        const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
        const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
        return Number.isFinite(kb) ? kb / 1024 : null;
      } catch {
        return null;
      }
    },
    waitForLog(msg, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const match = (l: LogLine) =>
          typeof msg === "string" ? l.msg === msg : msg.test(String(l.msg ?? ""));
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${name}: no log line ${msg} within ${ms} ms`));
        }, ms);
        const w = (l: LogLine) => {
          if (!match(l)) return;
          clearTimeout(t);
          waiters.delete(w);
          resolve(l);
        };
        waiters.add(w);
      });
    },
    async kill(sig: Deno.Signal = "SIGKILL") {
      // A SIGKILLed server cannot stop its terminal proxy child: the test does, by pid.
      const children = sig === "SIGKILL" ? descendantsOf(child.pid) : [];
      // Nor remove its egress proxy's working directory (infra/network/squid.ts): the test does.
      const squidDirs = children.map(squidDirOf).filter((d): d is string => d !== null);
      signal(sig);
      for (const pid of children) killPid(pid);
      const status = await exited;
      for (const dir of squidDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
      return status;
    },
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
    exited,
  };
}

/** Every process below pid (from /proc/<pid>/task/<tid>/children), deepest first. */
export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
      for (const c of text ? text.split(/\s+/).map(Number) : []) {
        out.push(...descendantsOf(c), c);
      }
    }
  } catch { /* gone */ }
  return out;
}

/** The temp directory of a Squid started by infra/network/squid.ts (`squid -N -f <dir>/squid.conf`). */
function squidDirOf(pid: number): string | null {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    if (!args.some((a) => a === "squid" || a.endsWith("/squid"))) return null;
    const conf = args[args.indexOf("-f") + 1] ?? "";
    const dir = /^(\/.*\/pomodex-egress-[^/]+)\/squid\.conf$/.exec(conf)?.[1];
    return dir ?? null;
  } catch {
    return null;
  }
}

function killPid(pid: number) {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/**
 * A port free on every address (Squid binds 0.0.0.0), from the ephemeral range: a fresh
 * one for each call, so servers started together do not pick the same.
 */
const handedOut = new Set<number>();
export function freeProxyPort(): number {
  for (let i = 0; i < 50; i++) {
    const l = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("no free port for the egress proxy");
}

/** 32 random bytes, base64: a MASTER_KEY two instances can share. */
export function randomMasterKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws with `what` after timeoutMs. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${
          last ? ` (last error: ${messageOf(last)})` : ""
        }`,
      );
    }
    await sleep(everyMs);
  }
}

// Typed for byte chunks: with DOM typings in the program, TextDecoderStream wants BufferSource.
function textDecoder() {
  return new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>;
}
