import type { Config } from "@/core/config.ts";
import { fromBase64Url, type SecretBox, toBase64Url } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { Logger } from "@/core/log.ts";
import { type Clock, realSleep, type Sleep, systemClock } from "@/core/clock.ts";
import { createKeyStore, type KeyStore, loadEnvironmentKey } from "./keys.ts";
import { createPasswordHasher, type PasswordHasher } from "./passwords.ts";
import { createRateLimiter, type RateLimiter, type RateRule } from "./rate-limit.ts";
import { type TokenSettings, VerifiedTokens } from "./tokens.ts";
import { LiveCredentials } from "./live-credentials.ts";
import type { Scope } from "./scopes.ts";

/** Everything the auth functions need, built once at start (services.ts). */
export interface AuthService {
  config: Config;
  sql: Sql;
  log: Logger;
  clock: Clock;
  /** How the login back-off waits (tests record instead). */
  sleep: Sleep;
  passwords: PasswordHasher;
  keys: KeyStore;
  limiter: RateLimiter;
  tokens: TokenSettings;
  rules: AuthRateRules;
  /** HMAC key deriving a refresh token's successor (see successorOf). */
  successorKey: CryptoKey;
  /** Sessions and clients found alive, while a change feed keeps them true (see there). */
  live: LiveCredentials<LivePrincipal>;
}

/** What authenticate() needs to know of a live session or client. */
export interface LivePrincipal {
  role: "user" | "admin";
  scopes?: Scope[];
}

export interface AuthRateRules {
  loginPerIp: RateRule;
  /** Failed logins on one account from one IP: past the limit, that IP is refused (429). */
  loginFailuresPerAccountIp: RateRule;
  /** Failed logins on one account from every IP: past the limit, each attempt waits first. */
  loginFailuresPerAccount: RateRule;
  registerPerIp: RateRule;
  registerPerEmail: RateRule;
  refreshPerIp: RateRule;
  refreshPerAccount: RateRule;
  clientTokenPerIp: RateRule;
}

export interface AuthServiceOptions {
  config: Config;
  sql: Sql;
  log: Logger;
  secrets: SecretBox;
  clock?: Clock;
  sleep?: Sleep;
}

export async function createAuthService(opts: AuthServiceOptions): Promise<AuthService> {
  const { config, sql, secrets } = opts;
  const clock = opts.clock ?? systemClock;
  const keys = await createKeyStore({
    sql,
    secrets,
    clock,
    accessTtlSeconds: config.jwt.accessTtlSeconds,
    environmentKey: await loadEnvironmentKey(config.jwt),
  });
  const successorSecret = await sharedSecret(sql, secrets, "refresh-successor");
  return {
    config,
    sql,
    log: opts.log,
    clock,
    sleep: opts.sleep ?? realSleep,
    passwords: await createPasswordHasher(),
    keys,
    limiter: createRateLimiter(sql, clock),
    tokens: {
      keys,
      clock,
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
      accessTtlSeconds: config.jwt.accessTtlSeconds,
      verified: new VerifiedTokens(),
    },
    rules: rateRules(config),
    live: new LiveCredentials(),
    successorKey: await crypto.subtle.importKey(
      "raw",
      successorSecret as BufferSource,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    ),
  };
}

function rateRules(config: Config): AuthRateRules {
  const r = config.rateLimits;
  return {
    loginPerIp: { bucket: "login:ip", limit: r.loginPerMinute, windowSeconds: 60 },
    loginFailuresPerAccountIp: {
      bucket: "login-failures:account-ip",
      limit: r.loginFailuresPer15Minutes,
      windowSeconds: 15 * 60,
    },
    loginFailuresPerAccount: {
      bucket: "login-failures:account",
      limit: r.loginFailuresPer15Minutes,
      windowSeconds: 15 * 60,
    },
    registerPerIp: { bucket: "register:ip", limit: r.registerPerMinute, windowSeconds: 60 },
    registerPerEmail: {
      bucket: "register:email",
      limit: r.registerPerEmailPerHour,
      windowSeconds: 3600,
    },
    refreshPerIp: { bucket: "refresh:ip", limit: r.refreshPerMinute, windowSeconds: 60 },
    refreshPerAccount: {
      bucket: "refresh:account",
      limit: r.refreshPerAccountPerMinute,
      windowSeconds: 60,
    },
    clientTokenPerIp: {
      bucket: "client-token:ip",
      limit: r.clientTokenPerMinute,
      windowSeconds: 60,
    },
  };
}

/**
 * A random secret made by whichever instance gets there first and shared by all of them,
 * stored sealed under the master key.
 */
async function sharedSecret(sql: Sql, secrets: SecretBox, name: string): Promise<Uint8Array> {
  const context = `auth-secret:${name}`;
  const candidate = toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  await sql`
    INSERT INTO auth_secrets (name, sealed) VALUES (${name}, ${await secrets.seal(
    candidate,
    context,
  )})
    ON CONFLICT (name) DO NOTHING`;
  const [row] = await sql<
    { sealed: string }[]
  >`SELECT sealed FROM auth_secrets WHERE name = ${name}`;
  return fromBase64Url(await secrets.open(row.sealed, context));
}
