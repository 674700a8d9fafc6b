import type { TestApp } from "./app.ts";

export interface TestUser {
  userId: string;
  email: string;
  password: string;
  accessToken: string;
  /** The access token again, under the name the HTTP client's options use (`{ token }`). */
  token: string;
  refreshToken: string;
  auth: { authorization: string };
}

/**
 * Where a user signs up: the app in-process (createTestApp), or a running server by its base
 * URL (startServer, startBenchServer).
 */
export type SignUpTarget = TestApp | string;

export interface SignUpOptions {
  email?: string;
  password?: string;
  /**
   * The client's address: in-process, the socket peer; over HTTP, X-Forwarded-For (the
   * client IP when the server trusts loopback as a proxy).
   */
  ip?: string;
}

/** Registers and logs in through the API, as a client would; throws unless both succeed. */
export async function signUp(
  target: SignUpTarget,
  opts: string | SignUpOptions = {},
): Promise<TestUser> {
  const { email, password = "correct horse battery", ip } = typeof opts === "string"
    ? { email: opts }
    : opts;
  const address = email ?? `user-${crypto.randomUUID().slice(0, 12)}@example.com`;
  const post = postTo(target, ip);
  const reg = await post("/auth/register", { email: address, password });
  if (reg.status !== 201) throw new Error(`register ${address}: ${reg.status} ${await reg.text()}`);
  const { user_id } = await reg.json();
  const login = await post("/auth/login", { email: address, password });
  if (login.status !== 200) {
    throw new Error(`login ${address}: ${login.status} ${await login.text()}`);
  }
  const tokens = await login.json();
  return {
    userId: user_id,
    email: address,
    password,
    accessToken: tokens.access_token,
    token: tokens.access_token,
    refreshToken: tokens.refresh_token,
    auth: { authorization: `Bearer ${tokens.access_token}` },
  };
}

export interface SignedIn {
  userId: string;
  accessToken: string;
  refreshToken: string;
  /** `{ authorization: "Bearer <access token>" }` */
  headers: Record<string, string>;
}

/** Registers the account (unless it exists) and logs it in over HTTP. */
export async function signIn(
  h: TestApp,
  email: string,
  password = "correct horse battery",
  ip = "127.0.0.1",
): Promise<SignedIn> {
  const post = postTo(h, ip);
  const reg = await post("/auth/register", { email, password });
  if (reg.status !== 201 && reg.status !== 409) {
    throw new Error(`register ${email}: ${reg.status} ${await reg.text()}`);
  }
  await reg.body?.cancel();
  const res = await post("/auth/login", { email, password });
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
  const body = await res.json();
  const [{ id }] = await h.sql<{ id: string }[]>`
    SELECT id FROM users WHERE lower(email) = lower(${email})`;
  return {
    userId: id,
    accessToken: body.access_token,
    refreshToken: body.refresh_token,
    headers: { authorization: `Bearer ${body.access_token}` },
  };
}

function postTo(target: SignUpTarget, ip?: string) {
  if (typeof target !== "string") {
    return (path: string, json: unknown) => target.request(path, { method: "POST", json, ip });
  }
  return (path: string, json: unknown) =>
    fetch(target + path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(ip ? { "x-forwarded-for": ip } : {}),
      },
      body: JSON.stringify(json),
      signal: AbortSignal.timeout(30_000),
    });
}
