import { createRoute, z } from "@hono/zod-openapi";
import { messageOf, unauthorized } from "@/core/errors.ts";
import { createRouter } from "@/web/http/router.ts";
import type { Metrics } from "@/web/http/metrics.ts";

/**
 * A dependency check. An `optional` one (e.g. the snapshot registry: only stops need it) is
 * reported in /ready but does not make the instance unready: taking every instance out of
 * rotation because a shared registry is down would turn a failed stop into an outage.
 */
export type ReadinessCheck = (() => Promise<void>) & { optional?: boolean };

/** Liveness, readiness (every dependency named) and Prometheus metrics. */
export function healthRoutes(checks: Record<string, ReadinessCheck>, metrics: Metrics) {
  const app = createRouter();

  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["health"],
      responses: {
        200: {
          description: "The process serves",
          content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
        },
      },
    }),
    (c) => c.json({ status: "ok" as const }, 200),
  );

  const readySchema = z.object({
    ready: z.boolean(),
    checks: z.record(
      z.string(),
      z.object({
        ok: z.boolean(),
        error: z.string().optional(),
        optional: z.boolean().optional().openapi({
          description: "Reported only: a failing optional dependency leaves ready true",
        }),
      }),
    ),
  });
  app.openapi(
    createRoute({
      method: "get",
      path: "/ready",
      tags: ["health"],
      responses: {
        200: {
          description: "Every required dependency answers",
          content: { "application/json": { schema: readySchema } },
        },
        503: {
          description: "A required dependency fails",
          content: { "application/json": { schema: readySchema } },
        },
      },
    }),
    async (c) => {
      const results = await runChecks(checks);
      const ready = Object.values(results).every((r) => r.ok || r.optional);
      return c.json({ ready, checks: results }, ready ? 200 : 503);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/metrics",
      tags: ["health"],
      description:
        "Public unless METRICS_TOKEN is set; then it needs that token as a bearer token.",
      responses: {
        200: {
          description: "Prometheus text: request counts and latency histograms by route and status",
          content: { "text/plain": { schema: z.string() } },
        },
        401: { description: "METRICS_TOKEN is set and the request does not carry it" },
      },
    }),
    async (c) => {
      if (!(await metrics.allows(c.req.header("authorization")))) {
        throw unauthorized("This endpoint needs the metrics token");
      }
      return c.text(await metrics.registry.metrics(), 200, {
        "Content-Type": metrics.registry.contentType,
      });
    },
  );

  return app;
}

async function runChecks(checks: Record<string, ReadinessCheck>) {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const optional = check.optional ? { optional: true } : {};
      try {
        await withTimeout(check(), 3000);
        return [name, { ok: true, ...optional }] as const;
      } catch (err) {
        const error = messageOf(err);
        return [name, { ok: false, error, ...optional }] as const;
      }
    }),
  );
  return Object.fromEntries(entries) as Record<
    string,
    { ok: boolean; error?: string; optional?: boolean }
  >;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
