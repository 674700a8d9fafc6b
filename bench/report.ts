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
    "Every figure comes from this one run; floors are measured in the same run, next to it.",
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
  const all = [...series.pomodexMs, ...series.bareMs];
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
<path d="${path(series.pomodexMs)}" fill="none" stroke="#2563eb" stroke-width="2"/>
<text x="${w - pad}" y="${h - 14}" text-anchor="end">create #</text>
<text x="${pad}" y="${h - 14}" fill="#2563eb">— Pomodex POST /projects</text>
<text x="${pad + 200}" y="${h - 14}" fill="#888">— bare engine create+start</text>
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
