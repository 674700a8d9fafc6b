import { timingSafeEqual } from "node:crypto";
import { Counter, Histogram, Registry } from "prom-client";

export interface MetricsOptions {
  /** METRICS_TOKEN: when set, reading the metrics needs `Authorization: Bearer <token>`. */
  token?: string;
}

/** One registry per app, so several apps in one process (tests) do not collide. */
export function createMetrics(opts: MetricsOptions = {}) {
  const registry = new Registry();
  const expected = opts.token ? digest(opts.token) : null;
  const requests = new Counter({
    name: "pomodex_http_requests_total",
    help: "HTTP requests by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "pomodex_http_request_duration_seconds",
    help: "HTTP request latency by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    registry,
    /** Whether a request with this Authorization header may read the metrics. */
    async allows(authorization: string | undefined): Promise<boolean> {
      if (!expected) return true; // no METRICS_TOKEN: public
      const presented = /^Bearer +(\S+) *$/i.exec(authorization ?? "")?.[1];
      // Digests of equal length, compared in constant time: nothing leaks the token's length
      // or how much of it a guess got right.
      const [want, got] = await Promise.all([expected, digest(presented ?? "")]);
      return presented !== undefined && timingSafeEqual(want, got);
    },
    observeRequest(method: string, route: string, status: number, seconds: number) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}
