/** The fixed origin a candidate is resolved against; it never appears in an answer. */
const ORIGIN = "http://pomodex.invalid";

// deno-lint-ignore no-control-regex -- control characters are exactly what is refused
const FORBIDDEN = /[\\\u0000-\u001f\u007f]/;

/**
 * Where to go after logging in. Only a path on this site is accepted; anything else goes to
 * `fallback` (the projects page).
 *
 * The candidate is resolved against a fixed origin, the way a browser resolves a Location
 * header, and the normalised result is what is judged and returned: checks on the raw
 * string miss what normalisation makes of it (`/.//evil.example` and `/a/..//evil.example`
 * both become `//evil.example`, another host). The result must keep that origin, and its
 * path must not start with `//` nor hold a backslash (browsers read `/\` as `//`), and
 * still not once percent-decoded (`/%2F%2Fevil.example`, `/.%2F/evil.example`), so that no
 * later decoding turns it into another host. Control characters are refused outright: the
 * URL parser would silently drop tabs and newlines.
 */
export function safeNext(next: string | null | undefined, fallback = "/dashboard"): string {
  if (!next || next.length > 2048 || !next.startsWith("/")) return fallback;
  const url = onThisSite(next);
  if (!url) return fallback;
  if (url.pathname === "/login" || url.pathname === "/signup") return fallback;
  return url.pathname + url.search + url.hash;
}

/** The candidate resolved on this site, or null when it (or a decoding of it) leaves it. */
function onThisSite(candidate: string): URL | null {
  let text = candidate;
  let first: URL | null = null;
  let previousPath: string | null = null;
  for (let depth = 0; depth < 4; depth++) {
    if (FORBIDDEN.test(text)) return null;
    let url: URL;
    try {
      url = new URL(text, ORIGIN);
    } catch {
      return null;
    }
    const path = url.pathname;
    if (url.origin !== ORIGIN || path.startsWith("//") || FORBIDDEN.test(path)) return null;
    first ??= url;
    if (path === previousPath) return first; // decoding only undid the parser's own escapes
    previousPath = path;
    try {
      text = decodeURIComponent(path);
    } catch {
      return null; // a malformed escape: nothing we would link to
    }
    if (text === path) return first;
  }
  return null; // still changing after several decodings: not a path anyone means
}
