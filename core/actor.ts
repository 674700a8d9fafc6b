/** Where a request came from, for rate limits and the audit log. */
export interface RequestMeta {
  ip: string;
  requestId?: string;
  userAgent?: string;
}

/** How a caller proved itself: a login session's JWT, a personal API key, an M2M client. */
export interface Principal {
  userId: string;
  role: "user" | "admin";
  sessionId?: string;
  via: "session" | "api_key" | "client";
  scopes?: string[];
}

/**
 * Who is asking, and through which request: set once per request (the API's bearer check,
 * the dashboard's session cookie) and passed as it is to the changes it makes.
 */
export interface Actor extends Principal, RequestMeta {}

/** The audit log's who-did-it columns for an actor acting on their own behalf. */
export function auditOf(actor: Pick<Actor, "userId" | "ip" | "requestId">) {
  return { userId: actor.userId, actorId: actor.userId, ip: actor.ip, requestId: actor.requestId };
}
