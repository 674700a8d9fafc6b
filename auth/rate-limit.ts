import type { Sql } from "@/infra/db/database.ts";
import { rateLimited } from "@/core/errors.ts";
import type { Clock } from "@/core/clock.ts";

export interface RateRule {
  bucket: string;
  limit: number;
  windowSeconds: number;
}

/**
 * Counters live in PostgreSQL so a limit holds across every instance. Each (bucket, key)
 * counts hits in fixed windows; the verdict uses the sliding estimate
 * previous * (share of the previous window still inside the last `window`) + current,
 * which avoids the double burst a plain fixed window allows at its edge.
 */
export interface RateLimiter {
  /** Counts one hit, then refuses (429 rate_limited, Retry-After) when over the limit. */
  hit(rule: RateRule, key: string): Promise<void>;
  /** Forgets a key (a successful login clears its failures); in `sql` when given (a transaction). */
  reset(rule: RateRule, key: string, sql?: Sql): Promise<void>;
  /**
   * Counts one hit on each (rule, key) in one statement, and returns their counts in order;
   * it refuses nothing. For a request that settles several limits at once (a login): the
   * caller decides with isOver() and takes back with uncount() the hits that must not stand.
   * The keys' buckets must differ.
   */
  countAll(hits: LimitHit[], now: Date): Promise<Counts[]>;
  /** Takes back one hit of each, counted at `now`; in `sql` when given (a transaction). */
  uncount(hits: LimitHit[], now: Date, sql?: Sql): Promise<void>;
}

export interface LimitHit {
  rule: RateRule;
  key: string;
}

const PRUNE_EVERY_MS = 60_000;

export function createRateLimiter(sql: Sql, clock: Clock): RateLimiter {
  let lastPrunedAt = 0;

  async function pruneNowAndThen(now: Date) {
    if (Date.now() - lastPrunedAt < PRUNE_EVERY_MS) return;
    lastPrunedAt = Date.now();
    await sql`DELETE FROM rate_limit_counters WHERE expires_at < ${now}`;
  }

  async function decrement(rule: RateRule, key: string, now: Date, db: Sql) {
    const w = windowOf(rule, now);
    await db`UPDATE rate_limit_counters SET count = count - 1
      WHERE bucket = ${rule.bucket} AND key = ${key} AND window_start = ${w.start}
        AND count > 0`;
  }

  async function countAll(hits: LimitHit[], now: Date): Promise<Counts[]> {
    const windows = hits.map((h) => windowOf(h.rule, now));
    const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
    const rows = await sql<{ current: number; previous: number }[]>`
      WITH input AS (
        SELECT * FROM unnest(
          ${hits.map((h) => h.rule.bucket)}::text[], ${hits.map((h) => h.key)}::text[],
          ${iso(windows.map((w) => w.start))}::timestamptz[],
          ${iso(windows.map((w) => w.previousStart))}::timestamptz[],
          ${iso(windows.map((w) => w.expiresAt))}::timestamptz[]
        ) WITH ORDINALITY AS t(bucket, key, window_start, previous_start, expires_at, ord)
      ), hit AS (
        INSERT INTO rate_limit_counters AS r (bucket, key, window_start, count, expires_at)
        SELECT bucket, key, window_start, 1, expires_at FROM input
        ON CONFLICT (bucket, key, window_start) DO UPDATE SET count = r.count + 1
        RETURNING r.bucket, r.key, r.count
      )
      SELECT h.count AS current, coalesce(p.count, 0) AS previous
      FROM input i
        JOIN hit h ON h.bucket = i.bucket AND h.key = i.key
        LEFT JOIN rate_limit_counters p
          ON p.bucket = i.bucket AND p.key = i.key AND p.window_start = i.previous_start
      ORDER BY i.ord`;
    await pruneNowAndThen(now);
    return rows.map((row, i) => ({
      current: row.current,
      previous: row.previous,
      elapsedMs: windows[i].elapsedMs,
    }));
  }

  return {
    async hit(rule, key) {
      const [counts] = await countAll([{ rule, key }], clock());
      // This request is already in the counts; Retry-After is when one more will fit.
      if (isOver(rule, counts)) throw rateLimited(retryAfterSeconds(rule, counts, 1));
    },
    async reset(rule, key, db = sql) {
      await db`DELETE FROM rate_limit_counters WHERE bucket = ${rule.bucket} AND key = ${key}`;
    },
    countAll,
    async uncount(hits, now, db = sql) {
      for (const h of hits) await decrement(h.rule, h.key, now, db);
    },
  };
}

/** Over the limit, with this hit counted. */
export const isOver = (rule: RateRule, counts: Counts) => estimate(rule, counts) > rule.limit;

export interface Counts {
  current: number;
  previous: number;
  /** How far into the current window we are. */
  elapsedMs: number;
}

function windowOf(rule: RateRule, now: Date) {
  const size = rule.windowSeconds * 1000;
  const start = Math.floor(now.getTime() / size) * size;
  return {
    start: new Date(start),
    previousStart: new Date(start - size),
    expiresAt: new Date(start + 2 * size),
    elapsedMs: now.getTime() - start,
  };
}

/** The sliding estimate of hits within the last window. */
export function estimate(rule: RateRule, c: Counts): number {
  const size = rule.windowSeconds * 1000;
  return c.previous * (1 - c.elapsedMs / size) + c.current;
}

/**
 * 0 when `pending` more hits fit under the limit; else the seconds until they would
 * (assuming no new hits meanwhile), rounded up.
 */
export function retryAfterSeconds(rule: RateRule, c: Counts, pending: number): number {
  const size = rule.windowSeconds * 1000;
  const allowed = rule.limit - pending; // the estimate must come down to this
  if (estimate(rule, c) <= allowed) return 0;
  let waitMs: number;
  if (c.current <= allowed && c.previous > 0) {
    // Still inside this window: the previous window's weight fades linearly.
    waitMs = size * (1 - (allowed - c.current) / c.previous) - c.elapsedMs;
  } else {
    // Only the next window helps: this window's count then fades the same way.
    waitMs = size - c.elapsedMs + size * (1 - Math.max(allowed, 0) / c.current);
  }
  return Math.max(1, Math.ceil(waitMs / 1000));
}
