import type { Context } from "hono";
import type { Principal } from "@/core/actor.ts";

/** What the Deno adapter passes to app.fetch: the socket peer, never a header. */
export interface Bindings {
  remoteAddr?: Deno.NetAddr;
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
