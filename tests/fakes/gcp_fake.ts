/**
 * A local HTTP fake of the Google Cloud REST endpoints Pomodex uses, answering the documented
 * request/response shapes:
 *
 * - OAuth2 token endpoint (`POST /token`, grant_type jwt-bearer): verifies the RS256
 *   assertion against the public keys of keys this fake issued, answers an access token.
 * - IAM v1: serviceAccounts create/get/delete, keys create/list/delete.
 * - Cloud Storage JSON API: buckets getIamPolicy/setIamPolicy (etag precondition, version 3
 *   conditions), objects insert (uploadType=multipart|media), list (paginated), get
 *   (metadata / alt=media, also under /download), delete.
 *
 * Every call but the token endpoint needs `Authorization: Bearer <token issued here>` (401
 * otherwise). The admin account may do anything; other accounts only what the bucket policy
 * grants them (conditional `resource.name.startsWith(...)` bindings are evaluated).
 * Test keys are generated with Web Crypto at start; nothing is committed.
 */
import { createHash } from "node:crypto";
import { messageOf } from "@/core/errors.ts";

export const GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token";

export interface RecordedRequest {
  method: string;
  /** Decoded path, e.g. `/v1/projects/p/serviceAccounts/a@p.iam.gserviceaccount.com/keys`. */
  path: string;
  /** Path as sent (percent-encoded). */
  rawPath: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Parsed JSON body, form fields of a token request, or the metadata part of an upload. */
  body?: unknown;
  bodySize: number;
  /** The account whose token authorized the call (after authentication). */
  caller?: string;
  status?: number;
}

export interface FakeKey {
  keyId: string;
  name: string;
  publicKey: CryptoKey;
  validAfterTime: string;
}

export interface FakeServiceAccount {
  email: string;
  accountId: string;
  project: string;
  uniqueId: string;
  displayName?: string;
  description?: string;
  keys: Map<string, FakeKey>;
}

export interface FakeObject {
  bucket: string;
  name: string;
  data: Uint8Array<ArrayBuffer>;
  generation: string;
  contentType: string;
  timeCreated: string;
  md5Hash: string;
  crc32c: string;
}

export interface FakeBinding {
  role: string;
  members: string[];
  condition?: { title?: string; description?: string; expression: string };
}

export interface FakePolicy {
  kind: "storage#policy";
  resourceId: string;
  version: number;
  etag: string;
  bindings: FakeBinding[];
}

export interface FakeState {
  gcpProject: string;
  serviceAccounts: Map<string, FakeServiceAccount>;
  /** bucket -> object name -> object */
  buckets: Map<string, Map<string, FakeObject>>;
  policies: Map<string, FakePolicy>;
  /** access token -> who and until when */
  tokens: Map<string, { email: string; scope: string; expiresAt: number }>;
  /** Largest page objects.list returns (maxResults can ask for less). */
  listPageSize: number;
  /** Lifetime of issued access tokens, seconds. */
  tokenLifetimeSeconds: number;
}

export interface ServiceAccountKeyFile {
  type: "service_account";
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  auth_uri: string;
  token_uri: string;
  auth_provider_x509_cert_url: string;
  client_x509_cert_url: string;
  universe_domain: string;
}

export interface GcpFake extends AsyncDisposable {
  /** Base URL (no trailing slash): IAM, storage and token endpoint all live here. */
  url: string;
  tokenUrl: string;
  gcpProject: string;
  /** Key file of the platform's own (admin) service account; token_uri points here. */
  adminKey: ServiceAccountKeyFile;
  requests: RecordedRequest[];
  /** The next request whose path matches (substring or RegExp) gets `status` instead. */
  failNext(
    pathPattern: string | RegExp,
    status: number,
    opts?: { method?: string; times?: number; message?: string },
  ): void;
  state: FakeState;
  /** Requests whose path matches, optionally of one method. */
  find(pathPattern: string | RegExp, method?: string): RecordedRequest[];
  close(): Promise<void>;
}

interface FailRule {
  pattern: string | RegExp;
  status: number;
  method?: string;
  remaining: number;
  message?: string;
}

const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  412: "FAILED_PRECONDITION",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function startGcpFake(
  opts: { gcpProject?: string; buckets?: string[] } = {},
): Promise<GcpFake> {
  const gcpProject = opts.gcpProject ?? "test-project";
  const state: FakeState = {
    gcpProject,
    serviceAccounts: new Map(),
    buckets: new Map(),
    policies: new Map(),
    tokens: new Map(),
    listPageSize: 1000,
    tokenLifetimeSeconds: 3599,
  };
  const requests: RecordedRequest[] = [];
  const rules: FailRule[] = [];
  let counter = 0;
  let baseUrl = "";

  for (const bucket of opts.buckets ?? ["test-bucket"]) {
    state.buckets.set(bucket, new Map());
    state.policies.set(bucket, {
      kind: "storage#policy",
      resourceId: `projects/_/buckets/${bucket}`,
      version: 1,
      etag: "CAE=",
      bindings: [
        {
          role: "roles/storage.legacyBucketOwner",
          members: [`projectEditor:${gcpProject}`, `projectOwner:${gcpProject}`],
        },
        { role: "roles/storage.legacyBucketReader", members: [`projectViewer:${gcpProject}`] },
      ],
    });
  }

  const newEtag = () => btoa(`etag-${++counter}`);

  // ---------- keys ----------

  async function issueKey(
    sa: FakeServiceAccount,
  ): Promise<{ key: FakeKey; file: ServiceAccountKeyFile }> {
    const pair = await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    );
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    const pem = `-----BEGIN PRIVATE KEY-----\n${
      base64(pkcs8).match(/.{1,64}/g)!.join("\n")
    }\n-----END PRIVATE KEY-----\n`;
    const keyId = hex(crypto.getRandomValues(new Uint8Array(20)));
    const key: FakeKey = {
      keyId,
      name: `projects/${sa.project}/serviceAccounts/${sa.email}/keys/${keyId}`,
      publicKey: pair.publicKey,
      validAfterTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    sa.keys.set(keyId, key);
    const file: ServiceAccountKeyFile = {
      type: "service_account",
      project_id: sa.project,
      private_key_id: keyId,
      private_key: pem,
      client_email: sa.email,
      client_id: sa.uniqueId,
      auth_uri: "https://accounts.google.com/o/oauth2/auth",
      token_uri: `${baseUrl}/token`,
      auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
      client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${
        encodeURIComponent(sa.email)
      }`,
      universe_domain: "googleapis.com",
    };
    return { key, file };
  }

  function addAccount(accountId: string, displayName?: string, description?: string) {
    const email = `${accountId}@${gcpProject}.iam.gserviceaccount.com`;
    const sa: FakeServiceAccount = {
      email,
      accountId,
      project: gcpProject,
      uniqueId: String(100000000000000000000n + BigInt(++counter)),
      displayName,
      description,
      keys: new Map(),
    };
    state.serviceAccounts.set(email, sa);
    return sa;
  }

  function saResource(sa: FakeServiceAccount) {
    return {
      name: `projects/${sa.project}/serviceAccounts/${sa.email}`,
      projectId: sa.project,
      uniqueId: sa.uniqueId,
      email: sa.email,
      displayName: sa.displayName,
      description: sa.description,
      etag: "MDEwMjE5MjA=",
      oauth2ClientId: sa.uniqueId,
    };
  }

  function keyResource(k: FakeKey) {
    return {
      name: k.name,
      validAfterTime: k.validAfterTime,
      validBeforeTime: "9999-12-31T23:59:59Z",
      keyAlgorithm: "KEY_ALG_RSA_2048",
      keyOrigin: "GOOGLE_PROVIDED",
      keyType: "USER_MANAGED",
    };
  }

  // ---------- responses ----------

  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json; charset=UTF-8", ...headers },
    });

  const googleError = (status: number, message: string, reason?: string) =>
    json(status, {
      error: {
        code: status,
        message,
        ...(reason ? { errors: [{ message, domain: "global", reason }] } : {
          status: STATUS_NAMES[status] ?? "UNKNOWN",
        }),
      },
    });

  // ---------- token endpoint ----------

  async function handleToken(req: Request, rec: RecordedRequest): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    rec.body = Object.fromEntries(form);
    const oauthError = (error: string, description: string) =>
      json(400, { error, error_description: description });
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return oauthError("unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type"));
    }
    const assertion = form.get("assertion") ?? "";
    const parts = assertion.split(".");
    if (parts.length !== 3) return oauthError("invalid_request", "Invalid JWT.");
    let header: { alg?: string; kid?: string };
    let claims: { iss?: string; aud?: string; scope?: string; exp?: number; iat?: number };
    try {
      header = JSON.parse(dec.decode(base64urlDecode(parts[0])));
      claims = JSON.parse(dec.decode(base64urlDecode(parts[1])));
    } catch {
      return oauthError("invalid_request", "Invalid JWT.");
    }
    if (header.alg !== "RS256") return oauthError("invalid_grant", "Invalid JWT algorithm.");
    const sa = state.serviceAccounts.get(claims.iss ?? "");
    if (!sa) return oauthError("invalid_grant", "Invalid grant: account not found");
    const signed = enc.encode(`${parts[0]}.${parts[1]}`);
    const signature = base64urlDecode(parts[2]);
    const candidates = header.kid && sa.keys.has(header.kid)
      ? [sa.keys.get(header.kid)!]
      : [...sa.keys.values()];
    let valid = false;
    for (const k of candidates) {
      if (await crypto.subtle.verify("RSASSA-PKCS1-v1_5", k.publicKey, signature, signed)) {
        valid = true;
        break;
      }
    }
    if (!valid) return oauthError("invalid_grant", "Invalid JWT Signature.");
    const now = Math.floor(Date.now() / 1000);
    if (claims.aud !== GOOGLE_TOKEN_AUD && claims.aud !== `${baseUrl}/token`) {
      return oauthError("invalid_grant", "Invalid JWT: Failed audience check.");
    }
    if (
      typeof claims.exp !== "number" || typeof claims.iat !== "number" || claims.exp <= now ||
      claims.iat > now + 300 || claims.exp - claims.iat > 3600
    ) {
      return oauthError(
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
      );
    }
    if (!claims.scope) return oauthError("invalid_scope", "Empty or missing scope not allowed.");
    const token = `ya29.fake-${hex(crypto.getRandomValues(new Uint8Array(24)))}`;
    state.tokens.set(token, {
      email: sa.email,
      scope: claims.scope,
      expiresAt: Date.now() + state.tokenLifetimeSeconds * 1000,
    });
    return json(200, {
      access_token: token,
      expires_in: state.tokenLifetimeSeconds,
      token_type: "Bearer",
    });
  }

  // ---------- IAM ----------

  async function handleIam(
    req: Request,
    seg: string[],
    rec: RecordedRequest,
    admin: boolean,
  ): Promise<Response> {
    // seg: ["v1","projects",P,"serviceAccounts",EMAIL?, "keys"?, KEYID?]
    if (seg[0] !== "v1" || seg[1] !== "projects" || seg[3] !== "serviceAccounts") {
      return googleError(404, "Not Found");
    }
    const project = seg[2];
    if (!admin) {
      return googleError(403, "Permission 'iam.serviceAccounts.*' denied on resource.");
    }
    if (project !== gcpProject && project !== "-") {
      return googleError(403, `Permission denied on resource project ${project}.`);
    }
    const method = req.method;
    if (seg.length === 4) {
      if (method !== "POST" || project === "-") return googleError(404, "Not Found");
      const body = await readJson(req, rec);
      const accountId = body?.accountId;
      if (
        typeof accountId !== "string" || accountId.length < 6 || accountId.length > 30 ||
        !/^[a-z]([-a-z0-9]*[a-z0-9])$/.test(accountId)
      ) {
        return googleError(
          400,
          "Invalid account ID. Account ID must be between 6 and 30 characters long, and may only contain lowercase alphanumeric characters and dashes.",
        );
      }
      const email = `${accountId}@${gcpProject}.iam.gserviceaccount.com`;
      if (state.serviceAccounts.has(email)) {
        return googleError(
          409,
          `Service account ${accountId} already exists within project projects/${gcpProject}.`,
        );
      }
      const sa = addAccount(
        accountId,
        body?.serviceAccount?.displayName,
        body?.serviceAccount?.description,
      );
      return json(200, saResource(sa));
    }
    const sa = state.serviceAccounts.get(seg[4]);
    const notFound = () => googleError(404, `Unknown service account`);
    if (seg.length === 5) {
      if (!sa) return notFound();
      if (method === "GET") return json(200, saResource(sa));
      if (method === "DELETE") {
        state.serviceAccounts.delete(sa.email);
        for (const [token, t] of state.tokens) if (t.email === sa.email) state.tokens.delete(token);
        // IAM keeps bindings of deleted accounts as deleted:serviceAccount:EMAIL?uid=ID.
        for (const policy of state.policies.values()) {
          for (const b of policy.bindings) {
            b.members = b.members.map((m) =>
              m === `serviceAccount:${sa.email}`
                ? `deleted:serviceAccount:${sa.email}?uid=${sa.uniqueId}`
                : m
            );
          }
        }
        return json(200, {});
      }
      return googleError(405, "Method not allowed");
    }
    if (seg[5] !== "keys") return googleError(404, "Not Found");
    if (!sa) return notFound();
    if (seg.length === 6) {
      if (method === "POST") {
        const body = await readJson(req, rec);
        if (body?.privateKeyType && body.privateKeyType !== "TYPE_GOOGLE_CREDENTIALS_FILE") {
          return googleError(400, "Only TYPE_GOOGLE_CREDENTIALS_FILE is supported by the fake.");
        }
        if (sa.keys.size >= 10) return googleError(400, "Precondition check failed.");
        const { key, file } = await issueKey(sa);
        return json(200, {
          ...keyResource(key),
          privateKeyType: "TYPE_GOOGLE_CREDENTIALS_FILE",
          privateKeyData: base64(enc.encode(JSON.stringify(file, null, 2))),
        });
      }
      if (method === "GET") return json(200, { keys: [...sa.keys.values()].map(keyResource) });
      return googleError(405, "Method not allowed");
    }
    const key = sa.keys.get(seg[6]);
    if (!key) return googleError(404, `Unknown key ${seg[6]}`);
    if (method === "GET") return json(200, keyResource(key));
    if (method === "DELETE") {
      sa.keys.delete(key.keyId);
      return json(200, {});
    }
    return googleError(405, "Method not allowed");
  }

  // ---------- storage ----------

  function policyBody(p: FakePolicy) {
    return structuredClone(p);
  }

  async function handleBucketIam(
    req: Request,
    bucket: string,
    rec: RecordedRequest,
    admin: boolean,
    query: URLSearchParams,
  ): Promise<Response> {
    const policy = state.policies.get(bucket);
    if (!policy) return googleError(404, "The specified bucket does not exist.", "notFound");
    if (!admin) {
      return googleError(
        403,
        `${rec.caller} does not have storage.buckets.getIamPolicy access to the Google Cloud Storage bucket.`,
        "forbidden",
      );
    }
    const hasConditions = (bs: FakeBinding[]) => bs.some((b) => b.condition);
    if (req.method === "GET") {
      const requested = Number(query.get("optionsRequestedPolicyVersion") ?? "1");
      if (hasConditions(policy.bindings) && requested < 3) {
        return googleError(
          400,
          "Policy contains conditional bindings: request optionsRequestedPolicyVersion=3.",
          "invalid",
        );
      }
      return json(200, policyBody(policy));
    }
    if (req.method === "PUT") {
      const body = await readJson(req, rec) as Partial<FakePolicy> | undefined;
      if (!body || !Array.isArray(body.bindings)) {
        return googleError(400, "Invalid policy.", "invalid");
      }
      if (body.etag !== undefined && body.etag !== policy.etag) {
        return googleError(412, "Precondition Failed", "conditionNotMet");
      }
      const version = body.version ?? 1;
      if (hasConditions(body.bindings) && version < 3) {
        return googleError(400, "IAM policy with conditions requires version 3.", "invalid");
      }
      for (const b of body.bindings) {
        if (typeof b.role !== "string" || !Array.isArray(b.members) || b.members.length === 0) {
          return googleError(400, "Invalid binding.", "invalid");
        }
        if (b.condition && (typeof b.condition.expression !== "string" || !b.condition.title)) {
          return googleError(400, "Condition needs a title and an expression.", "invalid");
        }
        for (const m of b.members) {
          const email = m.startsWith("serviceAccount:") ? m.slice("serviceAccount:".length) : "";
          if (
            email.endsWith(`@${gcpProject}.iam.gserviceaccount.com`) &&
            !state.serviceAccounts.has(email)
          ) {
            return googleError(400, `Service account ${email} does not exist.`, "invalid");
          }
        }
      }
      policy.bindings = structuredClone(body.bindings);
      policy.version = version;
      policy.etag = newEtag();
      return json(200, policyBody(policy));
    }
    return googleError(405, "Method not allowed");
  }

  /** Whether `email` may act on `resourceName` (bucket or object) through the policy. */
  function allowed(bucket: string, email: string, resourceName: string): boolean {
    const policy = state.policies.get(bucket);
    if (!policy) return false;
    return policy.bindings.some((b) => {
      if (!/^roles\/storage\.(objectAdmin|admin|objectUser)$/.test(b.role)) return false;
      if (!b.members.includes(`serviceAccount:${email}`)) return false;
      if (!b.condition) return true;
      const m = /^resource\.name\.startsWith\("([^"\\]*)"\)$/.exec(b.condition.expression.trim());
      return !!m && resourceName.startsWith(m[1]);
    });
  }

  function objectResource(o: FakeObject) {
    const encName = encodeURIComponent(o.name);
    return {
      kind: "storage#object",
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${baseUrl}/storage/v1/b/${o.bucket}/o/${encName}`,
      mediaLink:
        `${baseUrl}/download/storage/v1/b/${o.bucket}/o/${encName}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: o.generation,
      metageneration: "1",
      contentType: o.contentType,
      storageClass: "STANDARD",
      size: String(o.data.length),
      md5Hash: o.md5Hash,
      crc32c: o.crc32c,
      etag: `C${o.generation}EAE=`,
      timeCreated: o.timeCreated,
      updated: o.timeCreated,
      timeStorageClassUpdated: o.timeCreated,
    };
  }

  function storeObject(
    bucket: string,
    name: string,
    data: Uint8Array<ArrayBuffer>,
    contentType: string,
  ) {
    const now = Date.now();
    const o: FakeObject = {
      bucket,
      name,
      data,
      generation: String(now * 1000 + (++counter % 1000)),
      contentType,
      timeCreated: new Date(now).toISOString(),
      md5Hash: createHash("md5").update(data).digest("base64"),
      crc32c: crc32cBase64(data),
    };
    state.buckets.get(bucket)!.set(name, o);
    return o;
  }

  async function handleStorage(
    req: Request,
    seg: string[],
    rec: RecordedRequest,
    caller: string,
    admin: boolean,
    query: URLSearchParams,
  ): Promise<Response> {
    // [upload|download]? storage v1 b BUCKET (iam | o [NAME...])
    const kind = seg[0] === "upload" ? "upload" : seg[0] === "download" ? "download" : "api";
    const s = kind === "api" ? seg : seg.slice(1);
    if (s[0] !== "storage" || s[1] !== "v1" || s[2] !== "b" || !s[3]) {
      return googleError(404, "Not Found", "notFound");
    }
    const bucket = s[3];
    if (kind === "api" && s[4] === "iam" && s.length === 5) {
      return handleBucketIam(req, bucket, rec, admin, query);
    }
    if (s[4] !== "o") return googleError(404, "Not Found", "notFound");
    const objects = state.buckets.get(bucket);
    if (!objects) return googleError(404, "The specified bucket does not exist.", "notFound");
    const bucketResource = `projects/_/buckets/${bucket}`;
    const deny = (permission: string) =>
      googleError(
        403,
        `${caller} does not have ${permission} access to the Google Cloud Storage object. Permission '${permission}' denied on resource (or it may not exist).`,
        "forbidden",
      );

    if (kind === "upload") {
      if (req.method !== "POST" || s.length !== 5) return googleError(404, "Not Found", "notFound");
      const uploadType = query.get("uploadType");
      const raw = new Uint8Array(await req.arrayBuffer());
      rec.bodySize = raw.length;
      let name = query.get("name") ?? "";
      let data: Uint8Array<ArrayBuffer>;
      let contentType = req.headers.get("content-type") ?? "application/octet-stream";
      if (uploadType === "media") {
        data = raw;
      } else if (uploadType === "multipart") {
        const parsed = parseMultipart(raw, contentType);
        if (!parsed) return googleError(400, "Invalid multipart request.", "invalid");
        rec.body = parsed.metadata;
        data = parsed.data;
        name ||= String((parsed.metadata as { name?: string }).name ?? "");
        contentType = String(
          (parsed.metadata as { contentType?: string }).contentType ?? parsed.dataType,
        );
      } else {
        return googleError(
          400,
          `uploadType ${uploadType} is not supported by the fake.`,
          "invalid",
        );
      }
      if (!name) return googleError(400, "Required parameter: name", "required");
      if (!admin && !allowed(bucket, caller, `${bucketResource}/objects/${name}`)) {
        return deny("storage.objects.create");
      }
      if (query.get("ifGenerationMatch") === "0" && objects.has(name)) {
        return googleError(412, "Precondition Failed", "conditionNotMet");
      }
      return json(200, objectResource(storeObject(bucket, name, data, contentType)));
    }

    if (s.length === 5) {
      if (req.method !== "GET" || kind !== "api") return googleError(404, "Not Found", "notFound");
      if (!admin && !allowed(bucket, caller, bucketResource)) return deny("storage.objects.list");
      const prefix = query.get("prefix") ?? "";
      const pageSize = Math.min(
        Number(query.get("maxResults") ?? 1000) || 1000,
        state.listPageSize,
      );
      const after = query.get("pageToken")
        ? dec.decode(base64urlDecode(query.get("pageToken")!))
        : "";
      const names = [...objects.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
      const page = names.slice(0, pageSize);
      const body: Record<string, unknown> = { kind: "storage#objects" };
      if (page.length) body.items = page.map((n) => objectResource(objects.get(n)!));
      if (names.length > page.length) {
        body.nextPageToken = base64url(enc.encode(page[page.length - 1]));
      }
      return json(200, body);
    }

    const name = s.slice(5).join("/");
    const resourceName = `${bucketResource}/objects/${name}`;
    const o = objects.get(name);
    const generation = query.get("generation");
    const missing = () => googleError(404, `No such object: ${bucket}/${name}`, "notFound");
    if (req.method === "GET") {
      if (!admin && !allowed(bucket, caller, resourceName)) return deny("storage.objects.get");
      if (!o || (generation && generation !== o.generation)) return missing();
      if (query.get("alt") === "media" || kind === "download") {
        return new Response(o.data, {
          status: 200,
          headers: {
            "content-type": o.contentType,
            "cache-control": "private, max-age=0, no-transform",
            "x-goog-hash": `crc32c=${o.crc32c},md5=${o.md5Hash}`,
            "x-goog-generation": o.generation,
            "x-goog-metageneration": "1",
            "x-goog-stored-content-encoding": "identity",
            "x-goog-stored-content-length": String(o.data.length),
            etag: `C${o.generation}EAE=`,
          },
        });
      }
      return json(200, objectResource(o));
    }
    if (req.method === "DELETE" && kind === "api") {
      if (!admin && !allowed(bucket, caller, resourceName)) return deny("storage.objects.delete");
      if (!o || (generation && generation !== o.generation)) return missing();
      objects.delete(name);
      return new Response(null, { status: 204 });
    }
    return googleError(405, "Method not allowed");
  }

  // ---------- dispatch ----------

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const seg = url.pathname.split("/").filter((x) => x !== "").map((x) => {
      try {
        return decodeURIComponent(x);
      } catch {
        return x;
      }
    });
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => (headers[k] = v));
    const rec: RecordedRequest = {
      method: req.method,
      path: "/" + seg.join("/"),
      rawPath: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      bodySize: Number(req.headers.get("content-length") ?? 0),
    };
    requests.push(rec);

    const ruleIndex = rules.findIndex((r) =>
      (!r.method || r.method === req.method) &&
      (typeof r.pattern === "string" ? rec.path.includes(r.pattern) : r.pattern.test(rec.path))
    );
    if (ruleIndex >= 0) {
      const rule = rules[ruleIndex];
      if (--rule.remaining <= 0) rules.splice(ruleIndex, 1);
      await req.body?.cancel();
      if (seg[0] === "token") {
        return json(rule.status, {
          error: "injected_failure",
          error_description: rule.message ?? "injected failure",
        });
      }
      const reason = rule.status === 412 ? "conditionNotMet" : undefined;
      return googleError(rule.status, rule.message ?? `Injected failure (${rule.status}).`, reason);
    }

    if (seg.length === 1 && seg[0] === "token" && req.method === "POST") {
      return handleToken(req, rec);
    }

    const auth = req.headers.get("authorization") ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
    const grant = token ? state.tokens.get(token) : undefined;
    if (!grant || grant.expiresAt < Date.now()) {
      await req.body?.cancel();
      return googleError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
      );
    }
    rec.caller = grant.email;
    const admin = grant.email === adminEmail;

    if (seg[0] === "v1") return handleIam(req, seg, rec, admin);
    if (seg[0] === "storage" || seg[0] === "upload" || seg[0] === "download") {
      return handleStorage(req, seg, rec, grant.email, admin, url.searchParams);
    }
    await req.body?.cancel();
    return googleError(404, "Not Found");
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      let res: Response;
      try {
        res = await handle(req);
      } catch (err) {
        res = googleError(500, `fake crashed: ${messageOf(err)}`);
      }
      const rec = requests.at(-1);
      if (rec && rec.status === undefined) rec.status = res.status;
      return res;
    },
  );
  baseUrl = `http://127.0.0.1:${server.addr.port}`;

  const adminAccount = addAccount("pomodex-admin", "Pomodex platform");
  const adminEmail = adminAccount.email;
  const { file: adminKey } = await issueKey(adminAccount);

  return {
    url: baseUrl,
    tokenUrl: `${baseUrl}/token`,
    gcpProject,
    adminKey,
    requests,
    state,
    failNext(pathPattern, status, o = {}) {
      rules.push({
        pattern: pathPattern,
        status,
        method: o.method,
        remaining: o.times ?? 1,
        message: o.message,
      });
    },
    find(pathPattern, method) {
      return requests.filter((r) =>
        (!method || r.method === method) &&
        (typeof pathPattern === "string" ? r.path.includes(pathPattern) : pathPattern.test(r.path))
      );
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
    async close() {
      await server.shutdown();
    },
  };
}

// ---------- helpers ----------

// deno-lint-ignore no-explicit-any
async function readJson(req: Request, rec: RecordedRequest): Promise<any> {
  const text = await req.text();
  rec.bodySize = enc.encode(text).length;
  if (!text) return undefined;
  try {
    rec.body = JSON.parse(text);
  } catch {
    rec.body = text;
    return undefined;
  }
  return rec.body;
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** multipart/related: part 1 JSON metadata, part 2 the object's bytes. */
function parseMultipart(
  raw: Uint8Array,
  contentType: string,
): { metadata: unknown; data: Uint8Array<ArrayBuffer>; dataType: string } | null {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) return null;
  const delim = enc.encode(`--${boundary}`);
  const parts: { headers: string; body: Uint8Array }[] = [];
  let pos = indexOf(raw, delim);
  while (pos >= 0) {
    let start = pos + delim.length;
    if (raw[start] === 0x2d && raw[start + 1] === 0x2d) break; // closing --boundary--
    if (raw[start] === 0x0d && raw[start + 1] === 0x0a) start += 2;
    const headerEnd = indexOf(raw, enc.encode("\r\n\r\n"), start);
    if (headerEnd < 0) return null;
    const next = indexOf(raw, enc.encode(`\r\n--${boundary}`), headerEnd + 4);
    if (next < 0) return null;
    parts.push({
      headers: dec.decode(raw.subarray(start, headerEnd)),
      body: raw.subarray(headerEnd + 4, next),
    });
    pos = next + 2;
  }
  if (parts.length !== 2) return null;
  let metadata: unknown;
  try {
    metadata = JSON.parse(dec.decode(parts[0].body));
  } catch {
    return null;
  }
  const dataType = /content-type:\s*([^\r\n]+)/i.exec(parts[1].headers)?.[1] ??
    "application/octet-stream";
  return { metadata, data: parts[1].body.slice(), dataType };
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function base64url(bytes: Uint8Array): string {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32C (Castagnoli) as GCS reports it: base64 of the big-endian 32-bit value. */
export function crc32cBase64(data: Uint8Array): string {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  c = (c ^ 0xffffffff) >>> 0;
  return base64(new Uint8Array([c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff]));
}
