import { OpenAPIHono } from "@hono/zod-openapi";
import type { z } from "zod";
import { validationError } from "@/core/errors.ts";
import type { AppEnv } from "./types.ts";

/** Every route module builds its sub-app here, so validation failures share one shape. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(fieldErrors(result.error));
    },
  });
}

export function fieldErrors(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
}

/** The documented error body, for OpenAPI responses. */
export const errorResponses = {
  401: { description: "Missing or invalid credentials" },
  404: { description: "Not found (also for another user's resource)" },
  422: { description: "Validation error" },
} as const;
