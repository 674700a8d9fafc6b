export { ApiUnavailable, InternalApi, type Validation } from "./api-client.ts";
export { Close } from "./protocol.ts";
export { startTerminalProxy, type TerminalProxy, type TerminalProxyOptions } from "./proxy.ts";
export type { TerminalSettings } from "./settings.ts";
export { issueTerminalTicket, redeemTerminalTicket, TICKET_PREFIX } from "./tickets.ts";
