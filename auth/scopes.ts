/**
 * What a personal API key or an M2M client may be limited to. A login session has no
 * scopes: it can do everything its user can.
 */
export const SCOPES = ["projects:read", "projects:write"] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);
