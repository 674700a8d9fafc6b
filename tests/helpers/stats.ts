/** Percentiles for the bench and the reliability suite's reports (one definition for both). */

/**
 * The p-th percentile. A high one needs samples above it: a p99 of 20 samples would be their
 * maximum under another name, so it is refused unless there are more than 100 (take more
 * samples, or report max() as the max).
 */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  if (p > 50 && samples.length <= 100 / (100 - p)) {
    throw new Error(`a p${p} of ${samples.length} samples is their maximum: report max()`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The largest sample: what to report instead of a p99 when there are fewer than 100. */
export const max = (samples: number[]) => samples.length ? Math.max(...samples) : NaN;
