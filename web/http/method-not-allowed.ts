import type { Hono } from "hono";
import type { AppEnv } from "./types.ts";

/**
 * Hono answers 404 for a known path with an unknown method; the contract wants 405 and
 * an Allow header. The route table is read once, after every route is registered.
 */
export function allowedMethodsFinder(app: Hono<AppEnv>) {
  let table: { pattern: RegExp; method: string }[] | undefined;
  return (path: string): string[] => {
    table ??= app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ pattern: toPattern(r.path), method: r.method }));
    const methods = new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}

function toPattern(path: string): RegExp {
  const source = path
    .split("/")
    .map((seg) =>
      seg === "*"
        ? ".*"
        : seg.startsWith(":")
        ? "[^/]+"
        : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    )
    .join("/");
  return new RegExp(`^${source}/?$`);
}
