/**
 * Secrets at rest (signing keys, SSH private keys, cloud keys) are sealed with AES-256-GCM
 * under the master key. Sealed form: "v1.<iv b64url>.<ciphertext+tag b64url>".
 */
export interface SecretBox {
  seal(plaintext: string, context: string): Promise<string>;
  open(sealed: string, context: string): Promise<string>;
}

export async function createSecretBox(rawKey: Uint8Array): Promise<SecretBox> {
  if (rawKey.length !== 32) throw new Error("the master key must be 32 bytes");
  const key = await crypto.subtle.importKey("raw", rawKey as BufferSource, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  const enc = new TextEncoder(), dec = new TextDecoder();
  return {
    // The context (e.g. "project:<id>:ssh") is bound as additional data, so a sealed
    // value copied into another row does not open there.
    async seal(plaintext, context) {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: enc.encode(context) },
        key,
        enc.encode(plaintext),
      );
      return `v1.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(ct))}`;
    },
    async open(sealed, context) {
      const [version, iv, ct] = sealed.split(".");
      if (version !== "v1" || !iv || !ct) throw new Error("not a sealed secret");
      const pt = await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: fromBase64Url(iv) as BufferSource,
          additionalData: enc.encode(context),
        },
        key,
        fromBase64Url(ct) as BufferSource,
      );
      return dec.decode(pt);
    },
  };
}

/** MASTER_KEY from the environment, else a key file in the data directory made on first start. */
export async function loadMasterKey(masterKey: string | undefined, dataDir: string) {
  if (masterKey) return fromBase64Url(masterKey.replace(/\+/g, "-").replace(/\//g, "_"));
  const path = `${dataDir}/master.key`;
  try {
    return fromBase64Url((await Deno.readTextFile(path)).trim());
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = crypto.getRandomValues(new Uint8Array(32));
  try {
    await Deno.writeTextFile(path, toBase64Url(key) + "\n", { createNew: true, mode: 0o600 });
    return key;
  } catch (err) {
    // Another process made it first: use theirs.
    if (err instanceof Deno.errors.AlreadyExists) {
      return fromBase64Url((await Deno.readTextFile(path)).trim());
    }
    throw err;
  }
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** URL-safe random token with no dots (so it never looks like a JWT). */
export function randomToken(bytes = 32): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}
