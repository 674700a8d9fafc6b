import type { MiddlewareHandler } from "hono";
import type { Config } from "@/core/config.ts";
import { fromBase64Url, type SecretBox, toBase64Url } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError } from "@/core/errors.ts";
import type { AppEnv } from "@/web/http/types.ts";

/** The hidden form field that carries the synchronizer token. */
export const CSRF_FIELD = "_csrf";

const SECRET_NAME = "dashboard-csrf";
const encoder = new TextEncoder();

export const csrfFailed = () =>
  new AppError("csrf_failed", 403, "This form could not be accepted (expired or cross-site)");

/**
 * The HMAC key behind the dashboard's CSRF tokens. Made by whichever instance gets there
 * first and shared through the database (sealed under the master key), so a form rendered
 * by one instance is accepted by another.
 */
export async function loadCsrfKey(sql: Sql, secrets: SecretBox): Promise<CryptoKey> {
  const context = `auth-secret:${SECRET_NAME}`;
  const candidate = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  await sql`
    INSERT INTO auth_secrets (name, sealed)
    VALUES (${SECRET_NAME}, ${await secrets.seal(candidate, context)})
    ON CONFLICT (name) DO NOTHING`;
  const [row] = await sql<{ sealed: string }[]>`
    SELECT sealed FROM auth_secrets WHERE name = ${SECRET_NAME}`;
  const raw = fromBase64Url(await secrets.open(row.sealed, context));
  return await crypto.subtle.importKey(
    "raw",
    raw as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/**
 * The synchronizer token of a login session: HMAC(key, session id). It is the same on
 * every page of the session, needs no storage, and dies with the session.
 */
export async function csrfTokenFor(key: CryptoKey, sessionId: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`csrf:${sessionId}`));
  return toBase64Url(new Uint8Array(mac));
}

/** Constant-time (crypto.subtle.verify) check of a submitted token. */
export async function isValidCsrfToken(
  key: CryptoKey,
  sessionId: string,
  token: unknown,
): Promise<boolean> {
  if (typeof token !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
  return await crypto.subtle.verify(
    "HMAC",
    key,
    fromBase64Url(token) as BufferSource,
    encoder.encode(`csrf:${sessionId}`),
  );
}

/**
 * Same check as auth's requireSameOrigin (Origin equals PUBLIC_URL's origin, or
 * Sec-Fetch-Site says same-origin), for the page routes' own context type.
 */
export function isSameOrigin(
  config: Pick<Config, "publicUrl">,
  headers: { origin?: string; secFetchSite?: string },
): boolean {
  return headers.origin === new URL(config.publicUrl).origin ||
    headers.secFetchSite === "same-origin";
}

/**
 * Every unsafe request to a page route must come from our own origin; with `token`, a
 * logged-in viewer's form must also carry the session's synchronizer token. Either check
 * alone stops today's browsers; both together also cover a browser or proxy that drops one
 * of the signals. The login and signup forms have no session to bind a token to (and a
 * stale one must still work), so they get the origin check only.
 */
export function requirePageCsrf(
  config: Pick<Config, "publicUrl">,
  csrfKey: CryptoKey,
  opts: { token: boolean },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (["GET", "HEAD", "OPTIONS"].includes(c.req.method)) return await next();
    const sameOrigin = isSameOrigin(config, {
      origin: c.req.header("origin"),
      secFetchSite: c.req.header("sec-fetch-site"),
    });
    if (!sameOrigin) throw csrfFailed();
    const viewer = c.var.viewer;
    if (opts.token && viewer) {
      const form = await readForm(c);
      if (!await isValidCsrfToken(csrfKey, viewer.sessionId, form[CSRF_FIELD])) {
        throw csrfFailed();
      }
    }
    await next();
  };
}

export type FormFields = Record<string, string>;

/**
 * An urlencoded or multipart body's text fields (files are ignored); anything else reads
 * as empty. Hono caches the parsed body, so middleware and handler can both call this.
 */
export async function readForm(c: { req: { parseBody(): Promise<unknown> } }): Promise<FormFields> {
  let body: unknown;
  try {
    body = await c.req.parseBody();
  } catch {
    return {};
  }
  const fields: FormFields = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v === "string") fields[k] = v;
  }
  return fields;
}
