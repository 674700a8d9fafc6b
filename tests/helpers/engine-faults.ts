import { engineSocketPath } from "./engine.ts";

/**
 * A unix socket in front of the real engine that forwards every request, except those a
 * test chooses to fail: the production client talks to it as to any engine.
 */
export interface EngineFaultProxy extends AsyncDisposable {
  dockerHost: string;
  /** Stops forwarding and removes the socket; `await using` calls it. */
  close(): Promise<void>;
}

export function startEngineFaultProxy(
  fault: (req: Request, path: string) => Response | null,
): EngineFaultProxy {
  const socket = `/tmp/pomodex-fault-${crypto.randomUUID().slice(0, 8)}.sock`;
  const upstream = Deno.createHttpClient({
    proxy: { transport: "unix", path: engineSocketPath() },
  });
  const server = Deno.serve(
    { path: socket, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const injected = fault(req, url.pathname.replace(/^\/v[\d.]+/, ""));
      if (injected) return injected;
      return await fetch(`http://docker${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        client: upstream,
      });
    },
  );
  const close = async () => {
    await server.shutdown();
    upstream.close();
    await Deno.remove(socket).catch(() => {});
  };
  return { dockerHost: `unix://${socket}`, close, [Symbol.asyncDispose]: close };
}
