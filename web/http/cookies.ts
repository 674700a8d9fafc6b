import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AppContext } from "./types.ts";

/**
 * The dashboard's refresh token. The __Host- prefix makes browsers insist on Secure,
 * Path=/ and no Domain, so no subdomain can plant or read it; HttpOnly keeps scripts away
 * from it; SameSite=Strict keeps other sites from sending it.
 */
export const REFRESH_COOKIE = "__Host-pomodex_refresh";

export function setRefreshCookie(c: AppContext, token: string, expiresAt: Date, now: Date) {
  setCookie(c, REFRESH_COOKIE, token, {
    httpOnly: true,
    secure: true,
    sameSite: "Strict",
    path: "/",
    maxAge: Math.max(0, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)),
  });
}

export function readRefreshCookie(c: AppContext): string | undefined {
  return getCookie(c, REFRESH_COOKIE) || undefined;
}

export function clearRefreshCookie(c: AppContext) {
  deleteCookie(c, REFRESH_COOKIE, { httpOnly: true, secure: true, sameSite: "Strict", path: "/" });
}
