/** Small measuring helpers shared by the bench modules. */

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** The cost nothing can go below, measured in the same run. */
  floor?: number;
  /** value / floor */
  ratio?: number;
}

export async function timeEach(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn();
    out.push(performance.now() - started);
  }
  return out;
}

/** Runs `fn` from `concurrency` loops for `seconds`; returns per-call latencies and the rate. */
export async function load(
  seconds: number,
  concurrency: number,
  fn: () => Promise<void>,
): Promise<{ latencies: number[]; perSecond: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await fn();
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { latencies, perSecond: latencies.length / elapsed, errors };
}

/**
 * Several loads that take turns: `rounds` slices of `seconds / rounds` each, every load going
 * first in turn, so that a slow moment of the machine falls on all of them alike. Latencies
 * and errors add up over the slices; the rate is over the time each load ran.
 */
export async function loadsInTurn<K extends string>(
  seconds: number,
  rounds: number,
  concurrency: number,
  fns: Record<K, () => Promise<void>>,
): Promise<Record<K, { latencies: number[]; perSecond: number; errors: number }>> {
  const names = Object.keys(fns) as K[];
  const out = Object.fromEntries(
    names.map((n) => [n, { latencies: [] as number[], perSecond: 0, errors: 0, ran: 0 }]),
  ) as Record<K, { latencies: number[]; perSecond: number; errors: number; ran: number }>;
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length];
      const started = performance.now();
      const slice = await load(seconds / rounds, concurrency, fns[name]);
      out[name].ran += (performance.now() - started) / 1000;
      out[name].latencies.push(...slice.latencies);
      out[name].errors += slice.errors;
    }
  }
  for (const n of names) out[n].perSecond = out[n].latencies.length / out[n].ran;
  return out;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

export function row(name: string, value: number, unit: string, floor?: number): BenchRow {
  return floor === undefined
    ? { name, value: round(value), unit }
    : { name, value: round(value), unit, floor: round(floor), ratio: round(value / floor, 2) };
}
