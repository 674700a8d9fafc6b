/**
 * The OCI distribution API, for what the engine cannot do: list a repository's tags and
 * delete manifests. Speaks plain HTTP to loopback registries, HTTPS to everything else,
 * and follows the registry token flow (WWW-Authenticate: Bearer realm=...) when asked.
 */
export interface RegistryCredentials {
  username: string;
  password: string;
}

export class RegistryError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "RegistryError";
  }
}

const manifestTypes = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

export class RegistryClient {
  readonly base: string;
  #tokens = new Map<string, string>();

  constructor(
    readonly address: string,
    private credentials: () => Promise<RegistryCredentials | undefined> = () =>
      Promise.resolve(undefined),
    private timeoutMs = 15_000,
  ) {
    const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(address);
    this.base = `${loopback ? "http" : "https"}://${address}`;
  }

  async ping(): Promise<void> {
    const res = await this.#fetch("/v2/", {}, "registry:catalog:*");
    await res.body?.cancel();
    if (!res.ok) throw new RegistryError(res.status, `registry ${this.address}: ${res.status}`);
  }

  async catalog(): Promise<string[]> {
    const res = await this.#fetch("/v2/_catalog?n=1000", {}, "registry:catalog:*");
    if (!res.ok) throw await this.#error(res, "catalog");
    return ((await res.json()).repositories ?? []) as string[];
  }

  async listTags(repository: string): Promise<string[]> {
    const res = await this.#fetch(`/v2/${repository}/tags/list`, {}, scope(repository, "pull"));
    if (res.status === 404) {
      await res.body?.cancel();
      return [];
    }
    if (!res.ok) throw await this.#error(res, `tags of ${repository}`);
    return ((await res.json()).tags ?? []) as string[];
  }

  /** Deletes the manifest a tag points at. False when it was not there. */
  async deleteTag(repository: string, tag: string): Promise<boolean> {
    const head = await this.#fetch(
      `/v2/${repository}/manifests/${tag}`,
      { method: "HEAD", headers: { accept: manifestTypes } },
      scope(repository, "pull"),
    );
    await head.body?.cancel();
    if (head.status === 404) return false;
    const digest = head.headers.get("docker-content-digest");
    if (!head.ok || !digest) throw new RegistryError(head.status, `manifest ${repository}:${tag}`);
    const del = await this.#fetch(
      `/v2/${repository}/manifests/${digest}`,
      { method: "DELETE" },
      scope(repository, "delete"),
    );
    await del.body?.cancel();
    if (del.status === 404) return false;
    if (!del.ok) throw new RegistryError(del.status, `delete ${repository}:${tag}: ${del.status}`);
    return true;
  }

  /** Every tag of the repository gone; the number deleted. */
  async deleteRepository(repository: string): Promise<number> {
    let deleted = 0;
    for (const tag of await this.listTags(repository)) {
      if (await this.deleteTag(repository, tag)) deleted++;
    }
    return deleted;
  }

  async #fetch(path: string, init: RequestInit, tokenScope: string): Promise<Response> {
    const send = (authorization?: string) =>
      fetch(`${this.base}${path}`, {
        ...init,
        headers: {
          ...init.headers as Record<string, string>,
          ...(authorization ? { authorization } : {}),
        },
        signal: AbortSignal.timeout(this.timeoutMs),
      }).catch((err) => {
        throw new RegistryError(0, `registry ${this.address} unreachable: ${err.message}`);
      });
    const cached = this.#tokens.get(tokenScope);
    let res = await send(cached ? `Bearer ${cached}` : await this.#basic());
    if (res.status !== 401) return res;
    const challenge = res.headers.get("www-authenticate") ?? "";
    await res.body?.cancel();
    if (/^basic/i.test(challenge)) return await send(await this.#basic());
    const token = await this.#token(challenge, tokenScope);
    if (!token) return new Response(null, { status: 401 });
    this.#tokens.set(tokenScope, token);
    res = await send(`Bearer ${token}`);
    return res;
  }

  async #basic(): Promise<string | undefined> {
    const creds = await this.credentials();
    return creds ? `Basic ${btoa(`${creds.username}:${creds.password}`)}` : undefined;
  }

  async #token(challenge: string, tokenScope: string): Promise<string | undefined> {
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!params.realm) return undefined;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", tokenScope);
    const basic = await this.#basic();
    const res = await fetch(url, {
      headers: basic ? { authorization: basic } : {},
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const body = await res.json();
    return body.token ?? body.access_token;
  }

  async #error(res: Response, what: string): Promise<RegistryError> {
    const text = await res.text().catch(() => "");
    return new RegistryError(res.status, `registry ${what}: ${res.status} ${text.slice(0, 200)}`);
  }
}

function scope(repository: string, actions: string): string {
  return `repository:${repository}:${actions === "delete" ? "pull,push,delete" : actions}`;
}
