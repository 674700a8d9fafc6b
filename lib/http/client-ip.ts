import type { AppContext } from "./types.ts";

/**
 * The socket peer is the client. Forwarding headers count only when the peer is a
 * proxy listed in TRUSTED_PROXIES; then the rightmost address that is not itself a
 * trusted proxy is the client (the leftmost ones are whatever the client wrote).
 */
export function resolveClientIp(c: AppContext, trustedProxies: string[]): string {
  const peer = c.env?.remoteAddr?.hostname ?? "unknown";
  if (trustedProxies.length === 0 || !isTrusted(peer, trustedProxies)) return peer;
  const chain = (c.req.header("x-forwarded-for") ?? "").split(",").map((s) => s.trim())
    .filter(Boolean);
  for (let i = chain.length - 1; i >= 0; i--) {
    if (!isTrusted(chain[i], trustedProxies)) return chain[i];
  }
  return peer;
}

export function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === "::1" || address === "::ffff:127.0.0.1";
}

function isTrusted(ip: string, trusted: string[]): boolean {
  return trusted.some((entry) => entry.includes("/") ? inCidr(ip, entry) : entry === ip);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = Number(bitsText);
  const a = ipv4ToInt(ip), b = ipv4ToInt(base);
  if (a === null || b === null || !(bits >= 0 && bits <= 32)) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

function ipv4ToInt(ip: string): number | null {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    return null;
  }
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}
