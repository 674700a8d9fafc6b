/** A small HTTP client of the API, as an outside client sees it. */

export interface Answer {
  status: number;
  text: string;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
  ms: number;
}

export interface CallOptions {
  json?: unknown;
  /** Raw body (sent with content-type application/json unless headers say otherwise). */
  raw?: BodyInit;
  token?: string;
  /** Sent as X-Forwarded-For: the client IP when the server trusts loopback as a proxy. */
  ip?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export async function call(
  base: string,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.json !== undefined || opts.raw !== undefined) {
    headers["content-type"] ??= "application/json";
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.ip) headers["x-forwarded-for"] = opts.ip;
  const started = performance.now();
  const res = await fetch(base + path, {
    method,
    headers,
    body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.raw,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
  });
  const text = await res.text();
  const ms = performance.now() - started;
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  return { status: res.status, text, body, headers: res.headers, ms };
}

/** Stack frames, file paths, SQL or driver text: nothing a client should ever see. */
const internals = [
  /\bat [\w.<>$]+ \(/, // "at fn (" stack frames
  /\bat (file|ext|node):/,
  /file:\/\//,
  /node_modules/,
  /\.ts:\d+:\d+/,
  /\b(SELECT|INSERT|UPDATE|DELETE)\b[\s\S]*\b(FROM|INTO|SET|WHERE)\b/,
  /syntax error at or near/i,
  /\bPostgresError\b|\bERR_POSTGRES\b/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
];

export function leaksInternals(text: string): string | null {
  for (const re of internals) {
    const m = re.exec(text);
    if (m) return m[0].slice(0, 80);
  }
  return null;
}

/** Null when the answer is a well-formed error ({detail, code}, nothing internal), else why not. */
export function errorShapeProblem(a: Answer): string | null {
  if (!a.body || typeof a.body !== "object") {
    return `not a JSON error body: ${a.text.slice(0, 200)}`;
  }
  if (typeof a.body.detail !== "string" || !a.body.detail) {
    return `no detail: ${a.text.slice(0, 200)}`;
  }
  if (typeof a.body.code !== "string" || !a.body.code) return `no code: ${a.text.slice(0, 200)}`;
  const leak = leaksInternals(a.text);
  if (leak) return `leaks internals (${leak}): ${a.text.slice(0, 200)}`;
  return null;
}

/** A deterministic PRNG (mulberry32), so a printed seed reproduces a run. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
  };
}

/** 10.x.y.z addresses, one per client, for X-Forwarded-For behind a trusted loopback proxy. */
export function clientIp(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}
