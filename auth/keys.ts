import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type JWK,
} from "jose";
import type { SecretBox } from "@/infra/crypto/secrets.ts";
import type { Sql } from "@/infra/db/database.ts";
import type { Clock } from "@/core/clock.ts";
import { transaction } from "@/infra/db/transaction.ts";

export const JWT_ALG = "RS256";
const KEYS_LOCK = 0x6b657973; // "keys": one key maker at a time across instances
/** How long an instance trusts its copy of the key table before reading it again. */
const CACHE_MS = 60_000;
const RETIRED_KEYS_KEPT_MS = 24 * 3600_000;

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
}

/** A PKCS#8 key from JWT_PRIVATE_KEY / JWT_PRIVATE_KEY_PATH, with its derived kid. */
export interface EnvironmentKey extends SigningKey {
  publicJwk: JWK;
}

export interface KeyStore {
  /** The active key: every new token is signed with it. */
  signingKey(): Promise<SigningKey>;
  /** The public key for a kid, while tokens signed with it can still be valid. */
  verificationKey(kid: string): Promise<CryptoKey | undefined>;
  /** What /.well-known/jwks.json publishes: the active key and recently retired ones. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Retires the active key and makes a new one; returns the new kid. */
  rotate(): Promise<string>;
}

interface KeyRow {
  kid: string;
  publicJwk: JWK;
  privateKeySealed: string | null;
  source: "generated" | "environment";
  retiredAt: Date | null;
}

interface Snapshot {
  loadedAt: number;
  rows: KeyRow[];
  verifiers: Map<string, CryptoKey>;
  signing: SigningKey;
}

export interface KeyStoreOptions {
  sql: Sql;
  secrets: SecretBox;
  clock: Clock;
  /** Tokens live this long, so a retired key must verify at least this long. */
  accessTtlSeconds: number;
  environmentKey?: EnvironmentKey;
}

/**
 * Keys live in the database so every instance signs with the same key and restarts keep
 * sessions valid. Each instance caches the table for a minute; a retired key stays
 * published and trusted until every token it signed has expired.
 */
export async function createKeyStore(opts: KeyStoreOptions): Promise<KeyStore> {
  const { sql, secrets, clock } = opts;
  const trustRetiredMs = opts.accessTtlSeconds * 1000 + CACHE_MS + 60_000;
  await ensureActiveSigningKey(sql, secrets, clock, opts.environmentKey);

  let snapshot: Snapshot | undefined;
  let loading: Promise<Snapshot> | undefined;
  const reload = () =>
    loading ??= loadSnapshot(sql, secrets, opts.environmentKey, clock, trustRetiredMs)
      .then((s) => snapshot = s)
      .finally(() => loading = undefined);
  const current = async () =>
    snapshot && Date.now() - snapshot.loadedAt < CACHE_MS ? snapshot : await reload();
  const stillTrusted = (row: KeyRow) =>
    row.retiredAt === null || row.retiredAt.getTime() > clock().getTime() - trustRetiredMs;

  return {
    async signingKey() {
      return (await current()).signing;
    },
    async verificationKey(kid) {
      let s = await current();
      // Maybe another instance rotated since we looked. A forged kid costs one primary-key
      // lookup (no more than any bearer token costs); only a real one re-reads the table.
      if (!s.verifiers.has(kid) && await keyExists(sql, kid)) s = await reload();
      const row = s.rows.find((r) => r.kid === kid);
      return row && stillTrusted(row) ? s.verifiers.get(kid) : undefined;
    },
    async jwks() {
      const s = await current();
      return { keys: s.rows.filter(stillTrusted).map((r) => publishable(r.kid, r.publicJwk)) };
    },
    async rotate() {
      const kid = await rotateSigningKey(sql, secrets, clock, opts.environmentKey);
      await reload();
      return kid;
    },
  };
}

/**
 * Makes sure exactly one key is active: the environment's when one is configured, else
 * the generated one already there, else a new one. Two instances starting together
 * serialize on an advisory lock (and the one-active unique index backs that up).
 */
export async function ensureActiveSigningKey(
  sql: Sql,
  secrets: SecretBox,
  clock: Clock,
  environmentKey?: EnvironmentKey,
): Promise<string> {
  return await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${KEYS_LOCK})`;
    const now = clock();
    const [active] = await tx<{ kid: string; source: string }[]>`
      SELECT kid, source FROM signing_keys WHERE retired_at IS NULL`;
    if (environmentKey) {
      if (active?.kid === environmentKey.kid) return active.kid;
      if (active) await tx`UPDATE signing_keys SET retired_at = ${now} WHERE kid = ${active.kid}`;
      await tx`
        INSERT INTO signing_keys (kid, public_jwk, source, created_at)
        VALUES (${environmentKey.kid}, ${tx.json(environmentKey.publicJwk as never)},
          'environment', ${now})
        ON CONFLICT (kid) DO UPDATE SET retired_at = NULL`;
      return environmentKey.kid;
    }
    if (active?.source === "generated") return active.kid;
    // The environment key was removed from the configuration: its private half is gone.
    if (active) await tx`UPDATE signing_keys SET retired_at = ${now} WHERE kid = ${active.kid}`;
    return await insertGeneratedKey(tx, secrets, now);
  });
}

/** Retires the active key and activates a fresh one (old tokens keep verifying). */
export async function rotateSigningKey(
  sql: Sql,
  secrets: SecretBox,
  clock: Clock,
  environmentKey?: EnvironmentKey,
): Promise<string> {
  if (environmentKey) {
    throw new Error("the signing key comes from JWT_PRIVATE_KEY(_PATH): rotate by replacing it");
  }
  return await transaction(sql, async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${KEYS_LOCK})`;
    const now = clock();
    await tx`UPDATE signing_keys SET retired_at = ${now} WHERE retired_at IS NULL`;
    await tx`DELETE FROM signing_keys
      WHERE retired_at < ${new Date(now.getTime() - RETIRED_KEYS_KEPT_MS)}`;
    return await insertGeneratedKey(tx, secrets, now);
  });
}

async function keyExists(sql: Sql, kid: string): Promise<boolean> {
  return (await sql`SELECT 1 FROM signing_keys WHERE kid = ${kid}`).length > 0;
}

async function insertGeneratedKey(tx: Sql, secrets: SecretBox, now: Date): Promise<string> {
  const { privateKey } = await generateKeyPair(JWT_ALG, { modulusLength: 2048, extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = publicPart(privateJwk);
  const kid = await calculateJwkThumbprint(publicJwk);
  const sealed = await secrets.seal(JSON.stringify(privateJwk), sealContext(kid));
  await tx`
    INSERT INTO signing_keys (kid, public_jwk, private_key_sealed, source, created_at)
    VALUES (${kid}, ${tx.json(publicJwk as never)}, ${sealed}, 'generated', ${now})`;
  return kid;
}

async function loadSnapshot(
  sql: Sql,
  secrets: SecretBox,
  environmentKey: EnvironmentKey | undefined,
  clock: Clock,
  trustRetiredMs: number,
): Promise<Snapshot> {
  const since = new Date(clock().getTime() - trustRetiredMs);
  const rows = await sql<KeyRow[]>`
    SELECT kid, public_jwk, private_key_sealed, source, retired_at FROM signing_keys
    WHERE retired_at IS NULL OR retired_at > ${since}
    ORDER BY created_at DESC`;
  const active = rows.find((r) => r.retiredAt === null);
  if (!active) throw new Error("no active signing key (the signing_keys table was edited?)");
  const verifiers = new Map<string, CryptoKey>();
  for (const row of rows) {
    verifiers.set(row.kid, (await importJWK(row.publicJwk, JWT_ALG)) as CryptoKey);
  }
  return { loadedAt: Date.now(), rows, verifiers, signing: await signingKeyOf(active) };

  async function signingKeyOf(row: KeyRow): Promise<SigningKey> {
    if (row.source === "environment") {
      if (environmentKey?.kid !== row.kid) {
        throw new Error("the active signing key is another instance's JWT_PRIVATE_KEY");
      }
      return environmentKey;
    }
    const jwk = JSON.parse(await secrets.open(row.privateKeySealed!, sealContext(row.kid)));
    return { kid: row.kid, privateKey: (await importJWK(jwk, JWT_ALG)) as CryptoKey };
  }
}

/** Reads JWT_PRIVATE_KEY (inline PEM, "\n" escapes allowed) or the file at JWT_PRIVATE_KEY_PATH. */
export async function loadEnvironmentKey(
  jwt: { privateKey?: string; privateKeyPath?: string },
): Promise<EnvironmentKey | undefined> {
  const pem = jwt.privateKey?.replace(/\\n/g, "\n") ??
    (jwt.privateKeyPath ? await Deno.readTextFile(jwt.privateKeyPath) : undefined);
  if (pem === undefined) return undefined;
  if (!pem.includes("-----BEGIN PRIVATE KEY-----")) {
    throw new Error(
      "JWT_PRIVATE_KEY must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); " +
        "convert with: openssl pkcs8 -topk8 -nocrypt -in key.pem",
    );
  }
  const privateKey = await importPKCS8(pem.trim(), JWT_ALG, { extractable: true });
  const publicJwk = publicPart(await exportJWK(privateKey));
  if (publicJwk.kty !== "RSA" || (publicJwk.n?.length ?? 0) < 342) {
    throw new Error("JWT_PRIVATE_KEY must be an RSA key of at least 2048 bits");
  }
  // The extractable copy was only needed to derive the public half.
  const signing = await importPKCS8(pem.trim(), JWT_ALG);
  return { kid: await calculateJwkThumbprint(publicJwk), privateKey: signing, publicJwk };
}

function publicPart(jwk: JWK): JWK {
  return { kty: jwk.kty, n: jwk.n, e: jwk.e };
}

function publishable(kid: string, jwk: JWK): JWK {
  return { ...publicPart(jwk), kid, alg: JWT_ALG, use: "sig" };
}

const sealContext = (kid: string) => `signing-key:${kid}`;
