import { fromBase64Url, toBase64Url } from "@/infra/crypto/secrets.ts";
import { validationError } from "@/core/errors.ts";
import type { Sql, SqlFragment } from "./database.ts";

/**
 * Keyset paging, newest first, on (created_at, id): pages never skip or repeat a row while
 * rows are added. The cursor carries created_at in microseconds, because a JS Date keeps
 * milliseconds and rounding would skip rows.
 */
export interface Page<T> {
  rows: T[];
  nextCursor: string | null;
}

/** Select this next to the row, as `cursor_us`, and page with the helpers below. */
export const cursorColumn = (sql: Sql, table?: string) =>
  sql`(extract(epoch FROM ${
    sql(table ? `${table}.created_at` : "created_at")
  }) * 1000000)::bigint::text AS cursor_us`;

/** `AND (created_at, id) < cursor` when a cursor was given. */
export function afterCursor(sql: Sql, cursor: string | undefined, table?: string): SqlFragment {
  if (!cursor) return sql``;
  const { us, id } = decodeCursor(cursor);
  const col = (name: string) => sql(table ? `${table}.${name}` : name);
  return sql`AND (${col("created_at")}, ${col("id")}) <
    (timestamptz 'epoch' + ${us}::bigint * interval '1 microsecond', ${id})`;
}

/** Rows fetched with LIMIT limit+1: the extra row only says there is a next page. */
export function toPage<R extends { cursorUs: string; id: string }, V>(
  rows: R[],
  limit: number,
  view: (r: R) => V,
): Page<V> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept.at(-1);
  return { rows: kept.map(view), nextCursor: more && last ? encodeCursor(last) : null };
}

/** `%text%` for ILIKE, with the user's own % and _ taken literally. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function encodeCursor(row: { cursorUs: string; id: string }): string {
  return toBase64Url(new TextEncoder().encode(JSON.stringify([row.cursorUs, row.id])));
}

function decodeCursor(cursor: string): { us: string; id: string } {
  try {
    const [us, id] = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
    if (
      typeof us === "string" && /^\d{1,17}$/.test(us) &&
      typeof id === "string" && /^[0-9a-f-]{36}$/.test(id)
    ) return { us, id };
  } catch { /* fall through */ }
  throw validationError([{ path: "cursor", message: "is not a cursor this API gave out" }]);
}
