import postgres from "postgres";
import type { Logger } from "@/core/log.ts";
import { messageOf } from "@/core/errors.ts";
import { reconnectBackoff } from "./database.ts";

export interface ChannelHandlers {
  onNotify(payload: string): void;
  /**
   * True once LISTEN is in place; false as soon as its connection is lost, since then
   * notifications go missing until it listens again (on a connection of its own).
   */
  onListening(listening: boolean): void;
}

export interface ChannelFollower {
  close(): Promise<void>;
}

/**
 * Follows a NOTIFY channel on a connection of its own, listening again after the connection
 * drops, and tells when it is (not) listening: what a missed notification would have said
 * can only be trusted while it is.
 */
export function followChannel(
  url: string,
  channel: string,
  handlers: ChannelHandlers,
  log: Logger,
): ChannelFollower {
  let closing = false;
  let lost: () => void = () => {};
  // postgres.js's own listen() hides when its connection drops (it listens again quietly),
  // so this is its recipe with the drop made visible: one connection, `onnotify` (the
  // option listen() itself uses, not in the typings) and `onclose`.
  const options: postgres.Options<Record<string, never>> & {
    onnotify(channel: string, payload: string): void;
  } = {
    max: 1,
    max_lifetime: null,
    connect_timeout: 10,
    backoff: reconnectBackoff,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: `pomodex-listen-${channel}` },
    onnotify: (name, payload) => {
      if (name === channel) handlers.onNotify(payload);
    },
    onclose: () => {
      handlers.onListening(false);
      lost();
    },
  };
  const client = postgres(url, options);
  const following = (async () => {
    for (let retries = 0; !closing;) {
      const dropped = new Promise<void>((resolve) => (lost = resolve));
      try {
        await client.unsafe(`LISTEN "${channel.replaceAll('"', '""')}"`);
        retries = 0;
        handlers.onListening(true);
        await dropped;
      } catch (err) {
        if (closing) break;
        log.warn("database: cannot listen for changes; retrying", {
          channel,
          error: messageOf(err),
        });
        await new Promise((r) => setTimeout(r, reconnectBackoff(retries++) * 1000));
      }
    }
  })();
  return {
    async close() {
      closing = true;
      handlers.onListening(false);
      await client.end({ timeout: 5 });
      lost();
      await following;
    },
  };
}
