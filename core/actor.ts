/** How a caller proved itself: a login session's JWT, a personal API key, an M2M client. */
export interface Principal {
  userId: string;
  role: "user" | "admin";
  sessionId?: string;
  via: "session" | "api_key" | "client";
  scopes?: string[];
}

/** Where a request came from, for rate limits and the audit log. */
export interface RequestMeta {
  ip: string;
  requestId?: string;
  userAgent?: string;
}

/** Who is acting on what: the user a change is made for, and the request that made it. */
export interface Actor {
  userId: string;
  ip?: string;
  requestId?: string;
}

/** The audit log's who-did-it columns for an actor acting on their own behalf. */
export function auditOf(actor: Actor) {
  return { userId: actor.userId, actorId: actor.userId, ip: actor.ip, requestId: actor.requestId };
}
