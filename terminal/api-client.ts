import { sha256Hex } from "@/infra/crypto/secrets.ts";
import { looksLikeTicket } from "./tickets.ts";

/** What /internal/validate says about a (credential, project) pair. */
export interface Validation {
  userId: string;
  containerId: string | null;
  status: string;
}

/** The API could not give an answer (down, timed out, 5xx): not the same as "no". */
export class ApiUnavailable extends Error {
  override name = "ApiUnavailable";
}

export interface InternalApiOptions {
  /** The API's base URL on loopback (config.terminal.apiInternalUrl). */
  baseUrl: string;
  /** How long a "yes" for an access token is reused. Tickets are never cached: single use. */
  cacheMs?: number;
  timeoutMs?: number;
}

/**
 * The proxy's only way to the database: the API's /internal routes. A validation may be
 * cached for a few seconds (a page that opens several terminals asks once); longer would
 * let a logged-out or disabled user keep opening shells.
 */
export class InternalApi {
  #base: string;
  #cacheMs: number;
  #timeoutMs: number;
  #cache = new Map<string, { at: number; value: Validation }>();

  constructor(opts: InternalApiOptions) {
    this.#base = opts.baseUrl.replace(/\/$/, "");
    this.#cacheMs = opts.cacheMs ?? 3_000;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The answer, or null when the API says no (401). Throws ApiUnavailable otherwise. */
  async validate(token: string, projectId: string): Promise<Validation | null> {
    const cacheable = this.#cacheMs > 0 && !looksLikeTicket(token);
    // The cache key is a hash: no credential sits in the proxy's memory longer than a request.
    const key = cacheable ? `${await sha256Hex(token)}:${projectId}` : "";
    if (cacheable) {
      const hit = this.#cache.get(key);
      if (hit && Date.now() - hit.at < this.#cacheMs) return hit.value;
    }
    const res = await this.#post("/internal/validate", { token, project_id: projectId });
    if (res.status === 401) {
      await res.body?.cancel();
      return null;
    }
    if (res.status !== 200) throw await unexpected(res, "validate");
    const body = await res.json() as {
      user_id: string;
      container_id: string | null;
      status: string;
    };
    const value = { userId: body.user_id, containerId: body.container_id, status: body.status };
    if (cacheable && value.status === "running") {
      this.#prune();
      this.#cache.set(key, { at: Date.now(), value });
    }
    return value;
  }

  /**
   * Stamps terminal activity on the project. "gone" when the project stopped or its user
   * lost access (the connection should end); "ok" otherwise. Throws ApiUnavailable.
   */
  async reportActivity(projectId: string, userId: string): Promise<"ok" | "gone"> {
    const res = await this.#post("/internal/activity", {
      project_id: projectId,
      user_id: userId,
      source: "terminal",
    });
    await res.body?.cancel();
    if (res.status === 204) return "ok";
    if (res.status === 404) return "gone";
    throw await unexpected(res, "activity");
  }

  async #post(path: string, body: unknown): Promise<Response> {
    try {
      return await fetch(`${this.#base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new ApiUnavailable(`${path}: ${(err as Error).message}`);
    }
  }

  #prune() {
    const now = Date.now();
    for (const [k, v] of this.#cache) if (now - v.at >= this.#cacheMs) this.#cache.delete(k);
  }
}

async function unexpected(res: Response, what: string): Promise<ApiUnavailable> {
  await res.body?.cancel();
  return new ApiUnavailable(`${what}: the API answered ${res.status}`);
}
