import type { Context } from "hono";

/** What the Deno adapter passes to app.fetch: the socket peer, never a header. */
export interface Bindings {
  remoteAddr?: Deno.NetAddr;
}

export interface Principal {
  userId: string;
  role: "user" | "admin";
  sessionId?: string;
  /** How the caller proved itself: a login session's JWT, a personal API key, an M2M client. */
  via: "session" | "api_key" | "client";
  scopes?: string[];
}

export interface Variables {
  requestId: string;
  clientIp: string;
  principal?: Principal;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}

export type AppContext = Context<AppEnv>;
