/**
 * Ports without races. A port probed free (listen on 0, read it, close) is free only until
 * the next bind anywhere on the machine, and a connect to it can even reach itself when the
 * kernel picks that same port as the source: these helpers hold what they hand out.
 */

export interface RefusingAddress {
  hostname: string;
  port: number;
  /** host:port */
  address: string;
  close(): void;
}

/**
 * An address where every connect is refused, for as long as it is held. The port is bound
 * (and listening) on 127.0.0.1, so nobody else can bind it on every address; the address
 * handed out is 127.0.0.2 on that port, where nothing listens. Loopback answers for all of
 * 127/8, and its source address is 127.0.0.1, so a connect cannot reach itself either.
 */
export function refusingAddress(): RefusingAddress {
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  return {
    hostname: "127.0.0.2",
    port,
    address: `127.0.0.2:${port}`,
    close: () => held.close(),
  };
}

export interface Forwarder {
  /** The port the test holds, on 127.0.0.1 (and so on localhost). */
  port: number;
  /** Where connections go now, a port on 127.0.0.1; null: every connection is hung up. */
  target: number | null;
  close(): Promise<void>;
}

/**
 * A port that stays the test's while what serves behind it comes and goes: each connection
 * is piped, byte for byte, to `target` at the moment it arrives. For a server whose address
 * must be known before it starts (a URL handed to another server) and must stay the same
 * across its restarts: start it on port 0 and point the forwarder at it.
 */
export function forwarder(): Forwarder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pipes = new Set<Promise<void>>();
  const pipe = async (client: Deno.Conn, port: number | null) => {
    open.add(client);
    let upstream: Deno.Conn | null = null;
    try {
      if (port === null) return;
      upstream = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
      if (!upstream) return;
      open.add(upstream);
      const up = upstream;
      // Either direction ending ends both: these are HTTP and WebSocket connections, which
      // do not half-close.
      await Promise.race([
        client.readable.pipeTo(up.writable, { preventClose: true }),
        up.readable.pipeTo(client.writable, { preventClose: true }),
      ]).catch(() => {});
    } finally {
      for (const c of [client, upstream]) {
        if (!c) continue;
        open.delete(c);
        try {
          c.close();
        } catch { /* closed already */ }
      }
    }
  };
  const f: Forwarder = {
    port: (listener.addr as Deno.NetAddr).port,
    target: null,
    async close() {
      listener.close();
      await accepting;
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed already */ }
      }
      await Promise.all(pipes);
    },
  };
  const accepting = (async () => {
    for await (const client of listener) {
      const p = pipe(client, f.target);
      pipes.add(p);
      p.finally(() => pipes.delete(p));
    }
  })().catch(() => {});
  return f;
}

/**
 * Who answers on 127.0.0.1:`port` within `timeoutMs` (or until `gaveUp()`): the egress proxy
 * (Squid), something else, or nothing. The egress proxy's port must be a number the server
 * is given (Squid has no "port 0, then say which"), so a test takes a free one, and this
 * tells whether Squid got it or something else took it first.
 */
export async function whoAnswers(
  port: number,
  timeoutMs: number,
  gaveUp: () => boolean = () => false,
): Promise<"squid" | "something else" | "nothing"> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
    if (conn) {
      try {
        // Refused by Squid's own rules (not from a sandbox), which is answer enough. A Squid
        // still starting may accept and then reset the connection: ask again.
        const asked = await conn.write(
          new TextEncoder().encode("GET http://probe.invalid/ HTTP/1.0\r\n\r\n"),
        ).catch(() => null);
        const buf = new Uint8Array(4096);
        let head = "";
        while (asked !== null && !head.includes("\r\n\r\n")) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          head += new TextDecoder().decode(buf.subarray(0, n));
        }
        if (head) return /^server:\s*squid/im.test(head) ? "squid" : "something else";
      } finally {
        conn.close();
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return "nothing";
}
