import {
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import { randomToken, sha256Hex, toBase64Url } from "@/infra/crypto/secrets.ts";
import { unauthorized } from "@/core/errors.ts";
import type { Clock } from "@/core/clock.ts";
import { JWT_ALG, type KeyStore } from "./keys.ts";
import { isUuid } from "@/core/ids.ts";

/** RFC 9068's type for access tokens, so no other JWT we might sign is taken for one. */
export const ACCESS_TOKEN_TYPE = "at+jwt";
/** Small clock skew between instances is tolerated, nothing more. */
const CLOCK_TOLERANCE_SECONDS = 5;
const FORBIDDEN_HEADERS = ["jku", "jwk", "x5u", "x5c", "crit"];

export interface TokenSettings {
  keys: KeyStore;
  clock: Clock;
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  /** Tokens whose signature is known good (see VerifiedTokens); none: verify every time. */
  verified?: VerifiedTokens;
}

/**
 * Access tokens whose signature checked out, with their claims. Verifying RS256 costs
 * 0.2-0.4 ms of CPU here (most of an authenticated request), and a client sends the same
 * token for up to its whole lifetime: the signature is checked once, and the times and the
 * key's trust on every use. Only good tokens are kept, at most `maxEntries`, oldest first out.
 */
export class VerifiedTokens {
  #entries = new Map<string, { kid: string; claims: AccessClaims }>();
  constructor(readonly maxEntries = 10_000) {}

  get size(): number {
    return this.#entries.size;
  }

  get(token: string) {
    return this.#entries.get(token);
  }

  put(token: string, kid: string, claims: AccessClaims) {
    if (this.#entries.size >= this.maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(token, { kid, claims });
  }

  delete(token: string) {
    this.#entries.delete(token);
  }
}

/** A login session's token (sid) or an M2M client's (client_id + scope). */
export type AccessSubject =
  | { userId: string; sessionId: string }
  | { userId: string; clientId: string; scopes: string[] };

export interface AccessClaims extends JWTPayload {
  sub: string;
  jti: string;
  iat: number;
  exp: number;
  sid?: string;
  client_id?: string;
  scope?: string;
}

export async function signAccessToken(
  s: TokenSettings,
  subject: AccessSubject,
): Promise<{ token: string; expiresIn: number }> {
  const { kid, privateKey } = await s.keys.signingKey();
  const now = Math.floor(s.clock().getTime() / 1000);
  const claims = "sessionId" in subject
    ? { sid: subject.sessionId }
    : { client_id: subject.clientId, scope: subject.scopes.join(" ") };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: JWT_ALG, kid, typ: ACCESS_TOKEN_TYPE })
    .setSubject(subject.userId)
    .setIssuer(s.issuer)
    .setAudience(s.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + s.accessTtlSeconds)
    .setJti(crypto.randomUUID())
    .sign(privateKey);
  return { token, expiresIn: s.accessTtlSeconds };
}

/**
 * Verifies signature and claims with everything pinned: RS256 only, our kid, our iss and
 * aud, our typ, a lifetime no longer than ours. Headers that would let a token pick its
 * own key (jku, jwk, x5u, x5c) or demand unknown processing (crit) are refused outright.
 * This checks the token only; whether its session, key or client is still alive is
 * the caller's one database query (authenticate in web/http/auth.ts).
 */
export async function verifyAccessToken(s: TokenSettings, token: string): Promise<AccessClaims> {
  const invalid = unauthorized("Invalid or expired access token");
  const known = s.verified?.get(token);
  if (known) {
    // What jwtVerify checks beyond the signature, again: the times, and the key's trust.
    if (withinLifetime(known.claims, s) && await s.keys.verificationKey(known.kid)) {
      return known.claims;
    }
    s.verified!.delete(token);
    throw invalid;
  }
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw invalid;
  }
  if (
    header.alg !== JWT_ALG || typeof header.kid !== "string" || header.kid.length > 128 ||
    header.typ !== ACCESS_TOKEN_TYPE || FORBIDDEN_HEADERS.some((h) => h in header)
  ) throw invalid;
  const key = await s.keys.verificationKey(header.kid);
  if (!key) throw invalid;
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [JWT_ALG],
      issuer: s.issuer,
      audience: s.audience,
      typ: ACCESS_TOKEN_TYPE,
      currentDate: s.clock(),
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: s.accessTtlSeconds,
      requiredClaims: ["sub", "jti", "iat", "exp"],
    });
    if (!isUuid(payload.sub) || (payload.sid !== undefined && !isUuid(payload.sid))) throw invalid;
    if ((payload.sid === undefined) === (payload.client_id === undefined)) throw invalid;
    if (payload.client_id !== undefined && !isUuid(payload.client_id)) throw invalid;
    s.verified?.put(token, header.kid, payload as AccessClaims);
    return payload as AccessClaims;
  } catch (err) {
    if (err instanceof joseErrors.JOSEError || err === invalid) throw invalid;
    throw err;
  }
}

/** exp not passed, iat not in the future, and no older than our lifetime (with tolerance). */
function withinLifetime(claims: AccessClaims, s: TokenSettings): boolean {
  const now = s.clock().getTime() / 1000;
  const age = now - claims.iat;
  return claims.exp > now - CLOCK_TOLERANCE_SECONDS && age >= -CLOCK_TOLERANCE_SECONDS &&
    age <= s.accessTtlSeconds + CLOCK_TOLERANCE_SECONDS;
}

/** Opaque refresh token: 32 random bytes, base64url, no dots (never mistaken for a JWT). */
export const newRefreshToken = () => randomToken(32);

/** Tokens are stored only as SHA-256: they are random, so no salt or slow hash is needed. */
export const hashToken = (token: string) => sha256Hex(token);

/**
 * The token that replaces `token` on rotation: HMAC-SHA256 under a server secret. Being
 * deterministic, a refresh that raced the rotation can hand out the same successor
 * without the plaintext ever being stored.
 */
export async function successorOf(macKey: CryptoKey, token: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", macKey, new TextEncoder().encode(token));
  return toBase64Url(new Uint8Array(mac));
}
