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
  const address = parseIp(ip);
  if (address === null) return false;
  return trusted.some((entry) => {
    const [base, bitsText, ...rest] = entry.split("/");
    const network = parseIp(base);
    if (network === null || rest.length > 0) return false;
    // An IPv4 entry's prefix counts within the IPv4-mapped range (::ffff:0:0/96).
    const offset = parseIpv4(base) === null ? 0 : 96;
    if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) return false;
    const bits = bitsText === undefined ? 128 : offset + Number(bitsText);
    if (bits > 128) return false;
    const shift = BigInt(128 - bits);
    return address >> shift === network >> shift;
  });
}

/**
 * An address as 128 bits, IPv4 as IPv4-mapped IPv6, so that every spelling of one address
 * is one number: "2001:DB8::1" and "2001:db8:0:0:0:0:0:1", and "10.0.0.1" and the
 * "::ffff:10.0.0.1" of a peer on a dual-stack (HOST=::) listener. Null if it is none.
 */
function parseIp(text: string): bigint | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return 0xffff00000000n | BigInt(v4);
  if (!text.includes(":")) return null;
  let s = text.toLowerCase();
  const tail = s.slice(s.lastIndexOf(":") + 1);
  if (tail.includes(".")) {
    const embedded = parseIpv4(tail);
    if (embedded === null) return null;
    s = `${s.slice(0, s.length - tail.length)}${(embedded >>> 16).toString(16)}:${
      (embedded & 0xffff).toString(16)
    }`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = halves.map((h) => h === "" ? [] : h.split(":"));
  const count = groups[0].length + (groups[1]?.length ?? 0);
  if (halves.length === 1 ? count !== 8 : count > 7) return null;
  const all = [...groups[0], ...Array(8 - count).fill("0"), ...(groups[1] ?? [])];
  let value = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return value;
}

function parseIpv4(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    return null;
  }
  const [a, b, c, d] = parts.map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}
