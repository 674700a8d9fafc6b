export { ApiUnavailable, InternalApi, type Validation } from "./api-client.ts";
export { Close } from "./protocol.ts";
export {
  startTerminalProxy,
  type TerminalProxy,
  type TerminalProxyOptions,
  type TerminalSettings,
} from "./proxy.ts";
export { issueTerminalTicket, redeemTerminalTicket, TICKET_PREFIX } from "./tickets.ts";
