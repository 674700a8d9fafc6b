import type { Context } from "hono";
import type { Actor, RequestMeta } from "@/core/actor.ts";
import type { ProjectRow } from "@/projects/rows.ts";

/** What the Deno adapter passes to app.fetch: the socket peer, never a header. */
export interface Bindings {
  remoteAddr?: Deno.NetAddr;
}

/** Who is looking at a dashboard page. */
export interface Viewer {
  userId: string;
  email: string;
  role: "user" | "admin";
  /** The login session the cookie belongs to; the CSRF token is bound to it. */
  sessionId: string;
}

/** The API and the dashboard share one Env: each variable is set once, by one middleware. */
export interface Variables {
  /** Where the request came from: every request (observe). */
  request: RequestMeta & { requestId: string };
  /**
   * Who is asking, on routes behind a login: the API's requireUser (a bearer credential),
   * the dashboard's session cookie (loadViewer).
   */
  actor: Actor;
  /** The dashboard's logged-in user, for rendering (null: nobody is logged in). */
  viewer: Viewer | null;
  /** The caller's own project of a /projects/:id route (loadOwnedProject). */
  project: ProjectRow;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}

export type AppContext = Context<AppEnv>;
