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
