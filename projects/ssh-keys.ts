import { concatBytes } from "@/core/bytes.ts";
import { fromBase64Url } from "@/infra/crypto/secrets.ts";
import { validationError } from "@/core/errors.ts";

export interface SshKeyPair {
  publicKey: string; // authorized_keys line
  privateKey: string; // OpenSSH PEM
}

/** A fresh ed25519 key pair in the formats `ssh` and `authorized_keys` read. */
export async function generateSshKeyPair(comment: string): Promise<SshKeyPair> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const seed = fromBase64Url(jwk.d!);
  const publicBlob = concatBytes(sshString("ssh-ed25519"), sshString(pub));
  return {
    publicKey: `ssh-ed25519 ${toBase64(publicBlob)} ${comment}`,
    privateKey: openSshPrivateKey(publicBlob, pub, seed, comment),
  };
}

// The openssh-key-v1 container (PROTOCOL.key in OpenSSH's source), unencrypted: the key
// is sealed at rest by the SecretBox instead.
function openSshPrivateKey(
  publicBlob: Uint8Array,
  pub: Uint8Array,
  seed: Uint8Array,
  comment: string,
): string {
  const check = crypto.getRandomValues(new Uint8Array(4));
  let section = concatBytes(
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(concatBytes(seed, pub)),
    sshString(comment),
  );
  const padding = (8 - (section.length % 8)) % 8;
  section = concatBytes(section, Uint8Array.from({ length: padding }, (_, i) => i + 1));
  const body = concatBytes(
    new TextEncoder().encode("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(new Uint8Array()),
    uint32(1),
    sshString(publicBlob),
    sshString(section),
  );
  const lines = toBase64(body).match(/.{1,70}/g)!.join("\n");
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

const allowedKeyTypes = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

/**
 * A user's own public key becomes one authorized_keys line, so it must be exactly
 * "type base64 [comment]": no options (command=, from=...), no second line.
 */
export function normalizePublicKey(input: string): string {
  const line = input.trim();
  const invalid = (message: string) => validationError([{ path: "ssh_public_key", message }]);
  if (line.length > 16384) throw invalid("is too long");
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(line)) throw invalid("must be one line");
  const [type, data, ...rest] = line.split(/ +/);
  if (!allowedKeyTypes.includes(type)) throw invalid("must start with a supported key type");
  if (!data || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw invalid("has no valid key data");
  let blobType: string;
  try {
    const blob = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const len = new DataView(blob.buffer).getUint32(0);
    blobType = new TextDecoder().decode(blob.subarray(4, 4 + len));
  } catch {
    throw invalid("has no valid key data");
  }
  if (blobType !== type) throw invalid("key data does not match its type");
  const comment = rest.join(" ").replace(/[^\x20-\x7e]/g, "").slice(0, 200);
  return comment ? `${type} ${data} ${comment}` : `${type} ${data}`;
}

function sshString(value: string | Uint8Array): Uint8Array {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  return concatBytes(uint32(bytes.length), bytes);
}

function uint32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
