import type { Logger } from "@/core/log.ts";
import { superviseChild, type SupervisedChild } from "@/infra/host/supervisor.ts";
import { BLOCKED_V4, BLOCKED_V6 } from "./firewall.ts";

/**
 * The egress proxy: a Squid forward proxy (HTTP, and HTTPS by CONNECT) that every sandbox
 * reaches on its network's gateway. Squid itself knows nothing of projects: for each new
 * (sandbox address, host, port, method) it asks the API through an external ACL helper
 * (egress-acl-helper.sh → GET /internal/egress/decide) and keeps the answer a few seconds,
 * so a policy change holds within EGRESS_DECISION_TTL_SECONDS without a reload.
 */
export const EGRESS_DECISION_TTL_SECONDS = 3;

export interface SquidSpec {
  dir: string;
  port: number;
  /** Only these source addresses (the sandbox networks) may use the proxy. */
  sandboxPool: string;
  allowedRanges: string[];
  /** The host's own addresses: the proxy must not become a way onto the host. */
  hostAddresses: string[];
  hostsFile?: string;
  helperPath: string;
  apiUrl: string;
  /** The user Squid drops to when started as root. */
  user?: string;
}

export function squidConfig(s: SquidSpec): string {
  const pool = s.sandboxPool.split(".")[0] === "10" ? [] : [s.sandboxPool]; // 10/8 covers it
  const blocked = [...BLOCKED_V4, ...BLOCKED_V6, ...pool, ...s.hostAddresses];
  return [
    "# Written by Pomodex at start; edits are lost. See infra/network/squid.ts.",
    `http_port ${s.port}`,
    ...(s.user ? [`cache_effective_user ${s.user}`] : []),
    `pid_filename ${s.dir}/squid.pid`,
    `cache_log ${s.dir}/cache.log`,
    `access_log stdio:${s.dir}/access.log squid`,
    `coredump_dir ${s.dir}`,
    "cache deny all",
    "cache_mem 8 MB",
    "pinger_enable off",
    "shutdown_lifetime 1 seconds",
    "visible_hostname pomodex-egress",
    "httpd_suppress_version_string on",
    "via off",
    "forwarded_for delete",
    ...(s.hostsFile ? [`hosts_file ${s.hostsFile}`] : []),
    `acl sandboxes src ${s.sandboxPool}`,
    `acl blocked_dst dst ${blocked.join(" ")}`,
    ...(s.allowedRanges.length ? [`acl allowed_dst dst ${s.allowedRanges.join(" ")}`] : []),
    `external_acl_type pomodex_egress ttl=${EGRESS_DECISION_TTL_SECONDS} ` +
    `negative_ttl=${EGRESS_DECISION_TTL_SECONDS} children-max=8 children-startup=2 ` +
    `%SRC %DST %PORT %METHOD ${s.helperPath} ${s.apiUrl}`,
    "acl egress_ok external pomodex_egress",
    "http_access deny !sandboxes",
    "http_access deny to_localhost",
    s.allowedRanges.length
      ? "http_access deny blocked_dst !allowed_dst"
      : "http_access deny blocked_dst",
    "http_access allow egress_ok",
    "http_access deny all",
    "",
  ].join("\n");
}

export interface EgressProxy extends SupervisedChild {
  port: number;
}

/**
 * Writes the configuration into a fresh directory and starts Squid in the foreground under
 * supervision. Returns at once: `ready` settles when it accepts connections (or not).
 */
export async function startSquid(opts: {
  port: number;
  sandboxPool: string;
  allowedRanges: string[];
  hostsFile?: string;
  apiUrl: string;
  log: Logger;
}): Promise<EgressProxy & { ready: Promise<void> }> {
  assertPortFree(opts.port);
  // One directory per port, made afresh: what a killed server left there is cleared by the
  // next start on that port, instead of piling up.
  const dir = `/tmp/pomodex-egress-${opts.port}`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { mode: 0o700 });
  const helperPath = `${dir}/egress-acl-helper.sh`;
  await Deno.copyFile(new URL("./egress-acl-helper.sh", import.meta.url), helperPath);
  await Deno.chmod(helperPath, 0o755);
  // Squid reads its hosts file as its own user: a copy it can read.
  const hostsFile = opts.hostsFile ? `${dir}/hosts` : undefined;
  if (opts.hostsFile && hostsFile) await Deno.copyFile(opts.hostsFile, hostsFile);
  const user = Deno.uid() === 0 ? await squidUser() : undefined;
  if (user) await Deno.chown(dir, user.uid, user.gid);
  await Deno.chmod(dir, 0o755);
  const configPath = `${dir}/squid.conf`;
  await Deno.writeTextFile(
    configPath,
    squidConfig({
      dir,
      port: opts.port,
      sandboxPool: opts.sandboxPool,
      allowedRanges: opts.allowedRanges,
      hostAddresses: hostAddresses(),
      hostsFile,
      helperPath,
      apiUrl: opts.apiUrl,
      user: user?.name,
    }),
  );
  const child = superviseChild({
    name: "egress proxy (squid)",
    // Killed with us (setpriv's parent-death signal): a server that dies without its
    // shutdown must not leave a Squid holding the port for the next start.
    command: "setpriv",
    args: ["--pdeathsig", "KILL", "--", "squid", "-N", "-f", configPath],
    log: opts.log,
  });
  const ready = waitForPort(opts.port, 30_000).then(
    () => opts.log.info("egress proxy listening", { port: opts.port }),
    async (err) => {
      const said = await Deno.readTextFile(`${dir}/cache.log`).catch(() => "");
      opts.log.error("egress proxy: not answering; allowlist projects reach nothing", {
        error: (err as Error).message,
        squid: said.trim().split("\n").slice(-3).join(" | "),
      });
      throw err;
    },
  );
  ready.catch(() => {});
  return {
    port: opts.port,
    ready,
    async stop() {
      await child.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Squid would die at once (and be restarted every second) on a port that is taken. */
function assertPortFree(port: number) {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
  } catch (err) {
    throw new Error(`port ${port} is taken (${(err as Error).message}): set EGRESS_PROXY_PORT`);
  }
}

/** The host's own public addresses (the blocked ranges cover the others already). */
function hostAddresses(): string[] {
  return Deno.networkInterfaces()
    .map((i) => i.address.replace(/%.*$/, ""))
    .filter((a) => a.includes(":") ? !/^(::1$|f[c-d]|fe[89ab])/i.test(a) : !inBlockedV4(a));
}

function inBlockedV4(address: string): boolean {
  const n = toNumber(address);
  return BLOCKED_V4.some((cidr) => {
    const [base, bits] = cidr.split("/");
    const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
    return ((n & mask) >>> 0) === ((toNumber(base) & mask) >>> 0);
  });
}

const toNumber = (a: string) => a.split(".").reduce((n, p) => n * 256 + Number(p), 0);

async function squidUser(): Promise<{ name: string; uid: number; gid: number } | undefined> {
  const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
  const line = passwd.split("\n").find((l) => l.startsWith("proxy:"));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { name: "proxy", uid: Number(uid), gid: Number(gid) };
}

async function waitForPort(port: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`the egress proxy did not listen on port ${port} within ${timeoutMs} ms`);
}
