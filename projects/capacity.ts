// The capacity claim is a statement on the projects table, so it lives in queries.ts (which
// needs it for the create's insert, so this file cannot hold it without an import cycle).
// lifecycle/start.ts still imports it from here; once it imports queries.ts, this file goes.
export { capacityExhausted, claimCapacity, HOLDS_A_SANDBOX } from "./queries.ts";
