import type { VNode } from "preact";
import { renderToString } from "preact-render-to-string";
import { toBase64Url } from "@/infra/crypto/secrets.ts";
import { csrfTokenFor } from "./csrf.ts";
import { flashOf } from "./flash.ts";
import type { Dashboard } from "./mod.ts";
import { PageContext } from "./page-context.ts";
import type { Viewer } from "./session.ts";

export interface RenderOptions {
  viewer: Viewer | null;
  /** The request URL: its path marks the current nav item, its ?flash= shows a message. */
  url: string;
  status?: number;
}

/**
 * A full HTML page. Every page gets a strict CSP (scripts only from us, no inline script;
 * styles from us plus a per-response nonce for the terminal's own <style> elements) and
 * `Cache-Control: no-store`, since pages show a user's data.
 */
export async function renderPage(
  dashboard: Dashboard,
  page: VNode,
  opts: RenderOptions,
): Promise<Response> {
  const url = new URL(opts.url, "http://localhost");
  const styleNonce = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  const html = "<!DOCTYPE html>" + renderToString(
    <PageContext.Provider
      value={{
        assets: await dashboard.assets.manifest(),
        viewer: opts.viewer,
        csrfToken: opts.viewer
          ? await csrfTokenFor(dashboard.csrfKey, opts.viewer.sessionId)
          : null,
        styleNonce,
        flash: flashOf(url.searchParams.get("flash")),
        islands: new Set(),
        path: url.pathname,
      }}
    >
      {page}
    </PageContext.Provider>,
  );
  return new Response(html, {
    status: opts.status ?? 200,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "Content-Security-Policy": contentSecurityPolicy(dashboard.terminalOrigin, styleNonce),
    },
  });
}

export function contentSecurityPolicy(terminalOrigin: string, styleNonce: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${styleNonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${terminalOrigin}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * Island props as the text of a <script type="application/json">: `<`, `>` and `&` are
 * escaped so no value can close the script element or open a comment, and U+2028/2029
 * so the text is valid JavaScript too.
 */
export function serializeProps(props: unknown): string {
  return JSON.stringify(props ?? {})
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}
