import type { TestApp } from "./app.ts";

export interface TestUser {
  userId: string;
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
  auth: { authorization: string };
}

/** Registers and logs in through the API, as a client would. */
export async function signUp(h: TestApp, email?: string): Promise<TestUser> {
  const address = email ?? `user-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const password = "correct horse battery";
  const reg = await h.request("/auth/register", {
    method: "POST",
    json: { email: address, password },
  });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  const { user_id } = await reg.json();
  const login = await h.request("/auth/login", {
    method: "POST",
    json: { email: address, password },
  });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${await login.text()}`);
  const tokens = await login.json();
  return {
    userId: user_id,
    email: address,
    password,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    auth: { authorization: `Bearer ${tokens.access_token}` },
  };
}
