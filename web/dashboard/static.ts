import type { Context } from "hono";
import type { AssetStore } from "./assets.ts";

/**
 * GET /static/<hashed name>: from memory, gzipped when the browser takes it, cached for a
 * year (a new build has new names).
 */
export function serveAsset(assets: AssetStore) {
  return async (c: Context) => {
    const { files } = await assets.manifest();
    const asset = files.get(c.req.param("file") ?? "");
    if (!asset) return c.text("Not found", 404, { "Cache-Control": "no-store" });
    const gzip = /\bgzip\b/i.test(c.req.header("accept-encoding") ?? "");
    const body = gzip ? asset.gzip : asset.body;
    const headers: Record<string, string> = {
      "Content-Type": asset.contentType,
      "Cache-Control": "public, max-age=31536000, immutable",
      "Content-Length": String(body.length),
      "Vary": "Accept-Encoding",
      "X-Content-Type-Options": "nosniff",
    };
    if (gzip) headers["Content-Encoding"] = "gzip";
    return new Response(c.req.method === "HEAD" ? null : body as BodyInit, { headers });
  };
}
