import { messageOf } from "@/core/errors.ts";
import { BRIDGE_PREFIX } from "./subnets.ts";

/**
 * The host firewall that keeps sandboxes apart, as one nftables table of our own. nftables
 * evaluates every base chain on a hook, and a reject in any of them is final, so the
 * engines' own rules (Podman's netavark, Docker's iptables chains), whatever their order
 * and whenever they rewrite them, can accept what they like: ours still refuses it.
 *
 * Matched by input interface (every sandbox bridge is named pdxsb<slot>), so IPv4 and IPv6
 * alike are covered and no address in a sandbox's hands changes what it may reach.
 */
export const TABLE = "pomodex";

/** Never reachable from a sandbox, unless SANDBOX_ALLOWED_RANGES says otherwise. */
export const BLOCKED_V4 = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "224.0.0.0/3",
];
export const BLOCKED_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8"];

export interface FirewallSpec {
  allowedRanges: string[];
  /** The host's DNS servers: Docker's embedded DNS forwards to them from the sandbox. */
  dnsServers: string[];
}

export class FirewallError extends Error {}

const isV6 = (cidr: string) => cidr.includes(":");
const elements = (items: string[]) => items.length ? `{ ${items.join(", ")} }` : "";

/**
 * The whole table as one `nft -f` transaction: applied atomically, and idempotent. The
 * static sets and the chains are rewritten; `open_nets` (projects whose egress is open) and
 * `proxy_ports` are only ever added to, because every instance on the host shares them.
 */
export function firewallScript(spec: FirewallSpec): string {
  const bridges = `iifname "${BRIDGE_PREFIX}*"`;
  const reject = "reject with icmpx admin-prohibited";
  const sets: [string, string, string[]][] = [
    ["blocked4", "ipv4_addr", BLOCKED_V4],
    ["blocked6", "ipv6_addr", BLOCKED_V6],
    ["allowed4", "ipv4_addr", spec.allowedRanges.filter((r) => !isV6(r))],
    ["allowed6", "ipv6_addr", spec.allowedRanges.filter(isV6)],
    ["dns4", "ipv4_addr", spec.dnsServers.filter((r) => !isV6(r))],
    ["dns6", "ipv6_addr", spec.dnsServers.filter(isV6)],
  ];
  const lines = [
    `add table inet ${TABLE}`,
    `add set inet ${TABLE} open_nets { type ipv4_addr; flags interval; }`,
    `add set inet ${TABLE} proxy_ports { type inet_service; }`,
  ];
  for (const [name, type, items] of sets) {
    lines.push(`add set inet ${TABLE} ${name} { type ${type}; flags interval; }`);
    lines.push(`flush set inet ${TABLE} ${name}`);
    if (items.length) lines.push(`add element inet ${TABLE} ${name} ${elements(items)}`);
  }
  const chain = (name: string, hook: string, rules: string[]) => [
    `add chain inet ${TABLE} ${name} { type filter hook ${hook} priority filter - 10; policy accept; }`,
    `flush chain inet ${TABLE} ${name}`,
    ...rules.map((rule) => `add rule inet ${TABLE} ${name} ${bridges} ${rule}`),
  ];
  lines.push(
    // To the host itself: only replies, DNS on the gateway (Podman's aardvark-dns) and the
    // egress proxy. Not the API, the terminal proxy, sshd or anything else listening.
    ...chain("input", "input", [
      "ct state established,related accept",
      "meta l4proto { tcp, udp } th dport 53 accept",
      "tcp dport @proxy_ports accept",
      reject,
    ]),
    // Through the host: never another sandbox, link-local or a private range; the internet
    // only for projects whose egress is open (the others go through the proxy).
    ...chain("forward", "forward", [
      "ct state established,related accept",
      "meta l4proto { tcp, udp } th dport 53 ip daddr @dns4 accept",
      "meta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 accept",
      "ip daddr @allowed4 accept",
      "ip6 daddr @allowed6 accept",
      `ip daddr @blocked4 ${reject}`,
      `ip6 daddr @blocked6 ${reject}`,
      "ip saddr @open_nets accept",
      reject,
    ]),
  );
  return lines.join("\n") + "\n";
}

/** The nameservers of resolv.conf that a sandbox's DNS may be forwarded to. */
export function nameserversOf(resolvConf: string): string[] {
  return [...resolvConf.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((m) => m[1].replace(/%.*$/, ""))
    .filter((a) => !a.startsWith("127.") && a !== "::1")
    .map((a) => (isV6(a) ? `${a}/128` : `${a}/32`));
}

export async function installFirewall(spec: FirewallSpec): Promise<void> {
  await nft(firewallScript(spec));
}

export async function allowProxyPort(port: number): Promise<void> {
  await nft(`add element inet ${TABLE} proxy_ports { ${port} }\n`);
}

/**
 * Puts a project's subnet in or out of `open_nets`. Adding first makes the delete safe when
 * the element is absent, in one transaction.
 */
export async function setDirectEgress(subnet: string, open: boolean): Promise<void> {
  const add = `add element inet ${TABLE} open_nets { ${subnet} }`;
  await nft(open ? `${add}\n` : `${add}\ndelete element inet ${TABLE} open_nets { ${subnet} }\n`);
}

/** The subnets in `open_nets` now. */
export async function directEgressSubnets(): Promise<string[]> {
  const out = await nft(`list set inet ${TABLE} open_nets\n`);
  const match = out.match(/elements = \{([^}]*)\}/);
  return match ? match[1].split(",").map((s) => s.trim()).filter(Boolean) : [];
}

async function nft(script: string): Promise<string> {
  let child;
  try {
    child = new Deno.Command("nft", {
      args: ["-f", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    throw new FirewallError(
      `cannot run nft (${messageOf(err)}): install nftables`,
    );
  }
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) {
    const message = new TextDecoder().decode(stderr).trim().split("\n").slice(0, 3).join(" ");
    throw new FirewallError(`nft failed: ${message.slice(0, 400)}`);
  }
  return new TextDecoder().decode(stdout);
}
