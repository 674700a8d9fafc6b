import type { Config } from "@/core/config.ts";

/** The terminal settings of Config that the proxy acts on (limits, timeouts, ping). */
export type TerminalSettings = Omit<Config["terminal"], "enabled" | "publicUrl" | "apiInternalUrl">;
