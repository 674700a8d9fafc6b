/**
 * Service-account credentials for Google Cloud, through google-auth-library's JWT client:
 * the library signs an RS256 JWT assertion with the key and trades it at the OAuth2 token
 * endpoint for an access token (scope cloud-platform), caching and refreshing it.
 */
import { JWT } from "google-auth-library";
import { GcpError, gcpErrorFromThrown } from "./errors.ts";

export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
/** Google's OAuth2 token endpoint; google-auth-library posts JWT assertions here. */
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The JSON key file Google issues for a service account (the fields we rely on). */
export interface ServiceAccountKeyJson {
  type: "service_account";
  project_id?: string;
  private_key_id?: string;
  private_key: string;
  client_email: string;
  client_id?: string;
  token_uri?: string;
  universe_domain?: string;
}

/** Anything that can hand out a current OAuth2 access token. */
export interface AccessTokenSource {
  getAccessToken(): Promise<string>;
}

export interface GcpCredentials extends AccessTokenSource {
  readonly clientEmail: string;
  readonly projectId?: string;
  /** The google-auth-library client, e.g. for `new Storage({ authClient })`. */
  readonly authClient: JWT;
}

export interface CredentialsOptions {
  /** Default: cloud-platform. */
  scopes?: string[];
  /**
   * Where to post the signed JWT assertion. Default: the key's `token_uri`, else Google's.
   * (google-auth-library 11 always posts to Google's URL and ignores `token_uri`; when the two
   * differ the request is redirected by a transporter interceptor.)
   */
  tokenUrl?: string;
  /** Timeout of each token request. Default 30 s. */
  timeoutMs?: number;
}

/** Parse and validate the text of a service-account key file. Errors never quote the key. */
export function parseServiceAccountKey(text: string): ServiceAccountKeyJson {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new GcpError({
      status: 0,
      operation: "credentials.parse",
      googleMessage: "service-account key is not valid JSON",
    });
  }
  return validateServiceAccountKey(parsed);
}

export function validateServiceAccountKey(value: unknown): ServiceAccountKeyJson {
  const key = value as Partial<ServiceAccountKeyJson> | null;
  const problem = !key || typeof key !== "object"
    ? "service-account key must be a JSON object"
    : key.type !== "service_account"
    ? 'service-account key must have type "service_account"'
    : typeof key.client_email !== "string" || !key.client_email
    ? "service-account key has no client_email"
    : typeof key.private_key !== "string" || !key.private_key.includes("PRIVATE KEY")
    ? "service-account key has no PEM private_key"
    : null;
  if (problem) {
    throw new GcpError({ status: 0, operation: "credentials.parse", googleMessage: problem });
  }
  return key as ServiceAccountKeyJson;
}

/** Read a key from a file path, or validate an already-parsed key. */
export async function readServiceAccountKey(
  source: string | ServiceAccountKeyJson,
): Promise<ServiceAccountKeyJson> {
  if (typeof source !== "string") return validateServiceAccountKey(source);
  let text: string;
  try {
    text = await Deno.readTextFile(source);
  } catch (err) {
    throw new GcpError({
      status: 0,
      operation: "credentials.read",
      googleMessage: `cannot read service-account key file ${source}: ${
        (err as Error).name ?? "error"
      }`,
    });
  }
  return parseServiceAccountKey(text);
}

/** A google-auth-library JWT client for the key. */
export function createJwtClient(key: ServiceAccountKeyJson, opts: CredentialsOptions = {}): JWT {
  const client = new JWT({
    email: key.client_email,
    key: key.private_key,
    keyId: key.private_key_id,
    scopes: opts.scopes ?? [CLOUD_PLATFORM_SCOPE],
    transporterOptions: { timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS },
  });
  if (key.project_id) client.projectId = key.project_id;
  const tokenUrl = opts.tokenUrl ?? key.token_uri ?? GOOGLE_TOKEN_URL;
  if (tokenUrl !== GOOGLE_TOKEN_URL) {
    const target = new URL(tokenUrl);
    client.transporter.interceptors.request.add({
      resolved: (config) => {
        if (String(config.url) === GOOGLE_TOKEN_URL) config.url = new URL(target);
        return Promise.resolve(config);
      },
    });
  }
  return client;
}

/** Credentials for a key (or a key file path): a JWT client plus `getAccessToken()`. */
export async function loadCredentials(
  source: string | ServiceAccountKeyJson,
  opts: CredentialsOptions = {},
): Promise<GcpCredentials> {
  return credentialsFromKey(await readServiceAccountKey(source), opts);
}

export function credentialsFromKey(
  key: ServiceAccountKeyJson,
  opts: CredentialsOptions = {},
): GcpCredentials {
  const authClient = createJwtClient(key, opts);
  return {
    clientEmail: key.client_email,
    projectId: key.project_id,
    authClient,
    async getAccessToken(): Promise<string> {
      let token: string | null | undefined;
      try {
        token = (await authClient.getAccessToken()).token;
      } catch (err) {
        // Gaxios errors carry the request (with the signed assertion) in `config`: keep only
        // the status and Google's message.
        const e = err as { status?: number; response?: { status?: number }; message?: string };
        throw gcpErrorFromThrown("oauth2.token", {
          name: (err as Error)?.name,
          status: e?.status ?? e?.response?.status,
          message: e?.message ?? "token request failed",
        });
      }
      if (!token) {
        throw new GcpError({
          status: 0,
          operation: "oauth2.token",
          googleMessage: "token endpoint returned no access_token",
        });
      }
      return token;
    },
  };
}
