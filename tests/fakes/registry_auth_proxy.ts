// A registry that wants credentials the way Artifact Registry does: `oauth2accesstoken` as
// the user name and an OAuth access token as the password (Basic auth, after a 401 challenge).
// It stands in front of the local test registry and lets through only tokens that the Google
// fake issued, so a green Google Cloud test proves the snapshot push and the registry calls
// really authenticated with such a token.

export interface AuthRegistryProxy {
  /** host:port, as the engine and the app name the registry. */
  address: string;
  /** Every request let through, with the token it carried. */
  accepted: { method: string; path: string; token: string }[];
  /** Requests refused for missing or wrong credentials. */
  refused: number;
  close(): Promise<void>;
}

/**
 * `port` must be one the engine treats as an insecure (plain HTTP) registry: Podman needs it
 * listed in registries.conf (scripts/setup-engine.sh lists localhost:5002 for this test),
 * Docker trusts every 127.0.0.0/8 one.
 */
export function startAuthRegistryProxy(opts: {
  upstream: string;
  port: number;
  issuedTokens: () => Iterable<string>;
}): AuthRegistryProxy {
  const upstream = `http://${opts.upstream.replace(/^localhost/, "127.0.0.1")}`;
  const address = `localhost:${opts.port}`;
  const proxy: AuthRegistryProxy = {
    address,
    accepted: [],
    refused: 0,
    close: () => server.shutdown(),
  };
  const challenge = () =>
    new Response(
      JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }),
      {
        status: 401,
        headers: {
          "content-type": "application/json",
          "www-authenticate": `Basic realm="${address}"`,
          "docker-distribution-api-version": "registry/2.0",
        },
      },
    );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: opts.port, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const token = tokenOf(req.headers.get("authorization"));
      if (!token || ![...opts.issuedTokens()].includes(token)) {
        proxy.refused++;
        await req.body?.cancel();
        return challenge();
      }
      proxy.accepted.push({ method: req.method, path: url.pathname, token });
      const headers = new Headers(req.headers);
      headers.delete("authorization");
      headers.delete("host");
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
      });
      // Upload locations name the upstream: point them back through this proxy.
      const out = new Headers(res.headers);
      const location = out.get("location");
      if (location?.startsWith(upstream)) {
        out.set("location", `http://${address}${location.slice(upstream.length)}`);
      }
      return new Response(res.body, { status: res.status, headers: out });
    },
  );
  return proxy;
}

/** The password of `Basic oauth2accesstoken:<token>`; anything else is no token. */
function tokenOf(header: string | null): string | null {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? "");
  if (!match) return null;
  const decoded = atob(match[1]);
  return decoded.startsWith("oauth2accesstoken:")
    ? decoded.slice("oauth2accesstoken:".length)
    : null;
}
