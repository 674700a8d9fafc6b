// The bench's and the reliability suite's percentiles say what they are: a p99 of too few
// samples would be their maximum under another name, so it is refused.
import assert from "node:assert/strict";
import { max, percentile } from "./helpers/stats.ts";

Deno.test("percentile: a p99 needs more than 100 samples; a p50 does not; max is the max", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.throws(() => percentile(hundred, 99), /a p99 of 100 samples is their maximum/);
  assert.throws(() => percentile(hundred.slice(0, 20), 95), /a p95 of 20 samples/);
  const more = Array.from({ length: 1000 }, (_, i) => i + 1);
  assert.equal(percentile(more, 99), 991);
  assert.equal(percentile(hundred.slice(0, 3), 50), 2);
  assert.equal(max([3, 9, 1]), 9);
  assert.ok(Number.isNaN(percentile([], 50)));
});
