// `deno task bench [name...]`: runs the benchmarks, prints one table and, when every bench
// ran, writes bench/RESULTS.md (and the create → SSH chart) from this one run.
import { benchAuth } from "./auth.ts";
import { benchChecker } from "./checker.ts";
import { benchEgress } from "./egress.ts";
import { benchHttp } from "./http.ts";
import { benchProjects, type CreateSeries } from "./projects.ts";
import { type BenchResult, formatTable, writeReport } from "./report.ts";
import { serverPeaksMb } from "./server.ts";
import { benchSnapshots } from "./snapshots.ts";
import type { BenchRow } from "./stats.ts";
import { benchTerminal } from "./terminal.ts";

type Bench = () => Promise<{ rows: BenchRow[]; series?: CreateSeries }>;

export const benches: Record<string, Bench> = {
  auth: benchAuth,
  http: benchHttp,
  projects: benchProjects,
  snapshots: benchSnapshots,
  terminal: benchTerminal,
  egress: benchEgress,
  checker: benchChecker,
};

if (import.meta.main) {
  const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(benches);
  const unknown = wanted.filter((name) => !(name in benches));
  if (unknown.length > 0) {
    console.error(
      `unknown bench: ${unknown.join(", ")} (known: ${Object.keys(benches).join(", ")})`,
    );
    Deno.exit(2);
  }
  const results: BenchResult[] = [];
  let series: CreateSeries | undefined;
  for (const bench of wanted) {
    const started = performance.now();
    const out = await benches[bench]();
    console.error(`${bench}: ${Math.round(performance.now() - started)} ms`);
    results.push({ bench, rows: out.rows });
    series ??= out.series;
  }
  console.log(formatTable(results));
  for (const [bench, mb] of serverPeaksMb) {
    console.log(`server peak RSS (${bench}): ${Math.round(mb)} MB`);
  }
  if (wanted.length === Object.keys(benches).length) {
    await writeReport({ results, series, serverPeaksMb, dir: new URL("./", import.meta.url) });
    console.log("\nwrote bench/RESULTS.md");
  }
}
