/**
 * Where to go after logging in. Only a path on this site is accepted: it must start with
 * one "/" and not "//" or "/\" (browsers read both as another host), and may hold no
 * control characters or backslashes. Anything else goes to the projects page.
 */
export function safeNext(next: string | null | undefined, fallback = "/dashboard"): string {
  if (!next || next.length > 2048) return fallback;
  if (!next.startsWith("/") || next.startsWith("//")) return fallback;
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\\\u0000-\u001f\u007f]/.test(next)) return fallback;
  try {
    // Resolve against a dummy origin: a path that leaves it is not a path on this site.
    const url = new URL(next, "http://pomodex.invalid");
    if (url.origin !== "http://pomodex.invalid") return fallback;
    if (url.pathname === "/login" || url.pathname === "/signup") return fallback;
    return url.pathname + url.search + url.hash;
  } catch {
    return fallback;
  }
}
