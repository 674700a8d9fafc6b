/**
 * The islands' way to the JSON API. The access token comes from POST /auth/browser/refresh
 * (the HttpOnly cookie goes along; the server rotates it) and lives in memory only; a 401
 * renews it once. When the session is gone, the user goes to the login page and comes back.
 */
let current: Promise<string> | null = null;

export class SessionEnded extends Error {
  constructor() {
    super("The session has ended");
  }
}

export function goToLogin(): never {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
  throw new SessionEnded();
}

async function fetchToken(): Promise<string> {
  const res = await fetch("/auth/browser/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { accept: "application/json" },
  });
  if (res.status === 401) goToLogin();
  if (!res.ok) throw new Error(`Could not renew the session (${res.status})`);
  const body = await res.json() as { access_token: string };
  return body.access_token;
}

function token(): Promise<string> {
  if (!current) {
    const attempt = fetchToken();
    current = attempt;
    attempt.catch(() => {
      if (current === attempt) current = null;
    });
  }
  return current;
}

export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0;; attempt++) {
    const pending = token();
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${await pending}`);
    headers.set("accept", "application/json");
    const res = await fetch(path, { ...init, headers, credentials: "same-origin" });
    if (res.status !== 401 || attempt > 0) return res;
    await res.body?.cancel();
    if (current === pending) current = null; // expired: renew once
  }
}
