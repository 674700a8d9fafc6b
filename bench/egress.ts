// The egress proxy's cost on an allowlisted HTTPS download. A stand-in site in a network
// namespace on a 198.18.x.y address (the benchmarking range, which the sandbox firewall
// treats as the public internet) serves 1 MB and 10 MB over HTTPS. From inside two sandboxes
// of the same server, `curl` fetches them: from a project on an allowlist naming the site,
// through the egress proxy (Squid, asking the API whether the project may go there); and from
// a project on `open`, directly (`--noproxy '*'`, routed out by the firewall), the floor. The
// two paths alternate sample by sample. The time is curl's own, inside the sandbox, from
// the start of the connection to the last byte (time_total), and to the first byte.
import { createNetns, type TestNetns } from "@/tests/helpers/netns.ts";
import { sshRun } from "@/tests/helpers/ssh.ts";
import { signUp } from "@/tests/helpers/users.ts";
import { startBenchServer } from "./server.ts";
import { type BenchRow, row } from "./stats.ts";
import { max, percentile } from "@/tests/helpers/stats.ts";
import { messageOf } from "@/core/errors.ts";

const SITE = "downloads.example.test";
const MB = 1024 * 1024;
/**
 * Samples per path and size. A p99 is reported only from more than 100 samples (with 100 or
 * fewer, percentile() in tests/helpers/stats.ts refuses it); otherwise the max, named as such.
 */
const SIZES = [
  {
    bytes: 1 * MB,
    label: "1 MB",
    samples: Number(Deno.env.get("BENCH_EGRESS_SAMPLES_1MB") ?? 120),
  },
  {
    bytes: 10 * MB,
    label: "10 MB",
    samples: Number(Deno.env.get("BENCH_EGRESS_SAMPLES_10MB") ?? 50),
  },
];

interface Project {
  id: string;
  ssh_host: string;
  ssh_port: number;
  ssh_user: string;
  ssh_private_key: string;
}

interface Sample {
  totalMs: number;
  firstByteMs: number;
}

export async function benchEgress(): Promise<{ rows: BenchRow[] }> {
  // Torn down in reverse: the server, the site, the network namespace, the directory.
  await using cleanup = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "pomodex-bench-egress-" });
  cleanup.defer(() => Deno.remove(dir, { recursive: true }));
  const internet = cleanup.use(await createNetns({ prefix: "198.18" }));
  const site = await startSite(internet, dir);
  cleanup.defer(async () => {
    try {
      site.kill("SIGKILL");
    } catch { /* gone */ }
    await site.status;
  });
  await Deno.writeTextFile(`${dir}/hosts`, `${internet.peerAddress} ${SITE}\n`);
  await using server = await startBenchServer("egress", {
    EGRESS_HOSTS_FILE: `${dir}/hosts`,
    EGRESS_DEFAULT_POLICY: "open",
  });
  const base = server.url;
  const headers = { ...(await signUp(base)).auth, "content-type": "application/json" };
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const listed: Project = await api("POST", "/projects", { name: "egress-allowlist" });
  const open: Project = await api("POST", "/projects", { name: "egress-open" });
  await api("PUT", `/projects/${listed.id}/egress`, { policy: "allowlist", allowlist: [SITE] });

  const url = (bytes: number) => `https://${SITE}/bytes/${bytes}`;
  const viaProxy = (bytes: number) => curl(listed, url(bytes), "");
  const direct = (bytes: number) =>
    curl(open, url(bytes), `--noproxy '*' --resolve ${SITE}:443:${internet.peerAddress}`);

  // Both paths work (the proxy is up and the allowlist decided), and the allowlisted
  // project has no direct way out: the proxy is its only path.
  await retry("the download through the egress proxy", () => viaProxy(SIZES[0].bytes));
  await retry("the direct download", () => direct(SIZES[0].bytes));
  const sneaked = await curl(
    listed,
    url(1024),
    `--noproxy '*' --resolve ${SITE}:443:${internet.peerAddress}`,
  ).then(() => true, () => false);
  if (sneaked) throw new Error("the allowlisted project reached the site without the proxy");

  const rows: BenchRow[] = [];
  const p50 = (xs: number[]) => percentile(xs, 50);
  for (const size of SIZES) {
    for (let i = 0; i < 3; i++) await Promise.all([viaProxy(size.bytes), direct(size.bytes)]);
    const proxy: Sample[] = [], straight: Sample[] = [];
    for (let i = 0; i < size.samples; i++) {
      // Alternated, and which goes first too.
      if (i % 2 === 0) {
        proxy.push(await viaProxy(size.bytes));
        straight.push(await direct(size.bytes));
      } else {
        straight.push(await direct(size.bytes));
        proxy.push(await viaProxy(size.bytes));
      }
    }
    const total = { proxy: proxy.map((s) => s.totalMs), direct: straight.map((s) => s.totalMs) };
    const first = {
      proxy: proxy.map((s) => s.firstByteMs),
      direct: straight.map((s) => s.firstByteMs),
    };
    // Each proxied sample next to the direct one taken beside it.
    const added = total.proxy.map((ms, i) => ms - total.direct[i]);
    const tail = size.samples > 100 ? "p99" : "max";
    const high = (xs: number[]) => tail === "p99" ? percentile(xs, 99) : max(xs);
    rows.push(
      row(
        `HTTPS download of ${size.label}, allowlisted, through the egress proxy, p50 of ${size.samples} (vs direct, open)`,
        p50(total.proxy),
        "ms",
        p50(total.direct),
      ),
      row(
        `HTTPS download of ${size.label} through the proxy, ${tail} of ${size.samples} (vs direct ${tail})`,
        high(total.proxy),
        "ms",
        high(total.direct),
      ),
      row(
        `HTTPS download of ${size.label} through the proxy: first byte p50 (vs direct)`,
        p50(first.proxy),
        "ms",
        p50(first.direct),
      ),
      row(
        `HTTPS download of ${size.label}: time the proxy adds, median of the ${size.samples} paired differences`,
        p50(added),
        "ms",
      ),
      row(
        `HTTPS download of ${size.label} direct from an open project, p50 (floor)`,
        p50(total.direct),
        "ms",
      ),
    );
    console.error(
      `egress ${size.label}: proxy p50 ${rows.at(-5)!.value} ms vs direct ${
        rows.at(-5)!.floor
      } ms (x${rows.at(-5)!.ratio}); max ${rows.at(-4)!.value} vs ${rows.at(-4)!.floor} ms`,
    );
  }
  for (const p of [listed, open]) await api("DELETE", `/projects/${p.id}`);
  return { rows };
}

/** One download in the sandbox, over SSH as its user; curl's timings of it. */
async function curl(p: Project, url: string, opts: string): Promise<Sample> {
  const out = await sshRun(
    p,
    p.ssh_private_key,
    `curl -sSk --max-time 60 ${opts} -o /dev/null ` +
      `-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' ${url}`,
  );
  const [code, size, firstByte, total] = out.stdout.trim().split(" ");
  const expected = Number(url.split("/").at(-1));
  if (out.code !== 0 || code !== "200" || Number(size) !== expected) {
    throw new Error(`curl ${url} ${opts}: exit ${out.code}, ${out.stdout} ${out.stderr}`.trim());
  }
  return { totalMs: Number(total) * 1000, firstByteMs: Number(firstByte) * 1000 };
}

async function retry<T>(what: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${messageOf(err)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The site: a self-signed certificate (curl -k: the path is what is measured, not trust). */
async function startSite(ns: TestNetns, dir: string): Promise<Deno.ChildProcess> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${SITE}`,
      "-keyout",
      `${dir}/site.key`,
      "-out",
      `${dir}/site.crt`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns.name,
      Deno.execPath(),
      "run",
      "-A",
      new URL("./fakes/download_site.ts", import.meta.url).pathname,
      `${dir}/site.crt`,
      `${dir}/site.key`,
      ...SIZES.map((s) => String(s.bytes)),
      "1024",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  const reader = lines.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!(value ?? "").includes("ready")) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`the download site did not start: ${value}`);
  }
  // Drained, so that the site never blocks on a full pipe.
  lines.pipeTo(new WritableStream()).catch(() => {});
  return child;
}

if (import.meta.main) {
  const { rows } = await benchEgress();
  console.log(JSON.stringify(rows, null, 2));
}
