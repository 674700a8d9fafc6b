// bench/RESULTS.md: the machine, date and commit, one table with each figure next to its
// floor, and a chart of create → SSH latency over consecutive creates.
import type { BenchRow } from "./stats.ts";
import type { CreateSeries } from "./projects.ts";

export interface BenchResult {
  bench: string;
  rows: BenchRow[];
}

export async function writeReport(opts: {
  results: BenchResult[];
  series?: CreateSeries;
  /** The peak resident memory of each bench's server process. */
  serverPeaksMb: Map<string, number>;
  dir: URL;
}): Promise<void> {
  const machine = await describeMachine();
  const lines = [
    "# Pomodex benchmark results",
    "",
    `Measured by \`deno task bench\` on ${new Date().toISOString()}, commit ${await commit()}.`,
    `Machine: ${machine}.`,
    "Every figure comes from this one run; floors are measured in the same run, next to it, " +
    "taking turns with what they bound. A p99 is given only over more than 100 samples " +
    "(tests/helpers/stats.ts refuses fewer); below that, the max, named so.",
    "",
    formatTable(opts.results),
    "",
    `Server peak memory (VmHWM of each bench's server process; auth and checker run in the ` +
    `bench process itself): ${
      [...opts.serverPeaksMb].map(([bench, mb]) => `${bench} ${Math.round(mb)} MB`).join(", ") ||
      "not measured"
    }.`,
    "",
  ];
  lines.push(...FLOOR_NOTES, "");
  if (opts.series) {
    await Deno.writeTextFile(new URL("create-to-ssh.svg", opts.dir), chart(opts.series));
    lines.push(
      "## Create → SSH login, consecutive creates",
      "",
      "![create to SSH latency](create-to-ssh.svg)",
      "",
    );
  }
  await Deno.writeTextFile(new URL("RESULTS.md", opts.dir), lines.join("\n"));
}

/** What the floors are and how they take turns with what they bound, under the table. */
const FLOOR_NOTES = [
  "## The floors",
  "",
  "- **auth**: the bare argon2id hash and the login alternate, sample by sample, each going " +
  "first in turn (150 of each).",
  "- **snapshots**: each round, Pomodex's stop and start and the bare engine's archive, " +
  "commit + push and pull + run; the two take turns going first, round by round (4 rounds), " +
  "so that neither always meets the registry and the engine's caches colder.",
  "- **checker**: the floor is one `SELECT 1` round trip on the checker's own connection " +
  "pool, 20 of them before or after each pass, in turn.",
  "- **projects**: Pomodex creates each sandbox on a network of its own with an ext4 workspace " +
  "(loop-mounted, bind-mounted at /home/agent), behind its firewall. Two bare-engine floors, " +
  "alternated with it create by create (bench/bare.ts): the same isolation made with plain " +
  "calls (own /28 bridge network, sparse ext4 image made, loop-mounted and bind-mounted, same " +
  "hardening), and the floor from before isolation (default network, named volume). Pomodex " +
  "against the second is the isolation budget (10% on create → SSH); the bare floors against " +
  "each other are what isolation itself costs; Pomodex against the first is Pomodex's own cost.",
  "- **terminal**: keystrokes go by blocks, in turn, through the terminal proxy into a Pomodex " +
  "sandbox, over a direct exec TTY into the same sandbox, and over a direct exec TTY into two " +
  "bare containers, one with the same isolation and one without (the floor from before " +
  "isolation). The proxy row against the bare container without isolation is the budget's " +
  "comparison; it includes the proxy's own cost (the first row), which isolation does not change. " +
  "Every path's output is read and decoded the same way in the bench process (a WebSocket's " +
  "frames, or the exec stream's chunks). The reopens and the 50 MB cats alternate proxy and " +
  "direct, each going first in turn. For the cat, the direct path is not a strict ceiling: " +
  "through the proxy the work is split over two processes (proxy and bench) on two cores.",
  "- **egress**: from inside two sandboxes of one server, curl downloads over HTTPS from a " +
  "stand-in site on a 198.18.x.y address in a network namespace; alternately, sample by " +
  "sample, from a project on an allowlist naming the site (through the Squid egress proxy, " +
  "which asks the API) and from a project on `open` (`--noproxy '*'`, straight out through " +
  "the firewall): the floor. Times are curl's own, in the sandbox. A p99 is given only over " +
  "more than 100 samples; otherwise the max, named so.",
];

export function formatTable(results: BenchResult[]): string {
  const header = ["bench", "measure", "value", "unit", "floor", "ratio"];
  const body = results.flatMap(({ bench, rows }) =>
    rows.map((r) => [
      bench,
      r.name,
      String(r.value),
      r.unit,
      r.floor === undefined ? "" : String(r.floor),
      r.ratio === undefined ? "" : `${r.ratio}x`,
    ])
  );
  return [header, header.map(() => "---"), ...body].map((c) => `| ${c.join(" | ")} |`).join("\n");
}

/** A small line chart, hand-made SVG: no plotting dependency for one picture. */
export function chart(series: CreateSeries): string {
  const w = 640, h = 320, pad = 48;
  const all = [...series.pomodexMs, ...series.bareIsolatedMs, ...series.bareMs];
  const max = Math.ceil(Math.max(...all) / 500) * 500;
  const n = series.pomodexMs.length;
  const x = (i: number) => pad + (i * (w - 2 * pad)) / Math.max(1, n - 1);
  const y = (ms: number) => h - pad - (ms / max) * (h - 2 * pad);
  const path = (xs: number[]) =>
    xs.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const ticks = [0, max / 2, max].map((v) =>
    `<text x="${pad - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>` +
    `<line x1="${pad}" x2="${w - pad}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${
    w / 2
  }" y="20" text-anchor="middle" font-size="14">Create → SSH login (ms), ${n} consecutive creates</text>
${ticks}
<path d="${path(series.bareMs)}" fill="none" stroke="#888" stroke-width="2"/>
<path d="${path(series.bareIsolatedMs)}" fill="none" stroke="#d97706" stroke-width="2"/>
<path d="${path(series.pomodexMs)}" fill="none" stroke="#2563eb" stroke-width="2"/>
<text x="${w - pad}" y="${h - 14}" text-anchor="end">create #</text>
<text x="${pad}" y="${h - 14}" fill="#2563eb">— Pomodex POST /projects</text>
<text x="${pad + 170}" y="${h - 14}" fill="#d97706">— bare, own network + ext4</text>
<text x="${pad + 340}" y="${h - 14}" fill="#888">— bare, plain</text>
</svg>
`;
}

async function describeMachine(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.+)/)?.[1];
  const memKb = Number((await Deno.readTextFile("/proc/meminfo")).match(/MemTotal:\s+(\d+)/)?.[1]);
  return `${navigator.hardwareConcurrency} cores (${cpu ?? "unknown CPU"}), ${
    Math.round(memKb / 1024 / 1024)
  } GiB, ${Deno.build.os} ${Deno.build.arch}, Deno ${Deno.version.deno}`;
}

async function commit(): Promise<string> {
  const out = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"] }).output()
    .catch(() => null);
  return out?.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
}
