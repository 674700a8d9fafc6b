/**
 * Sandbox networks: SANDBOX_SUBNET_POOL cut into /28s, one per project slot. A /28 holds the
 * gateway (.1, the host's side, where DNS and the egress proxy answer) and the sandbox.
 */
export const SLOT_PREFIX = 28;

/** Every sandbox bridge is named with this prefix, so the firewall can match them all. */
export const BRIDGE_PREFIX = "pdxsb";

export interface SubnetPool {
  /** The pool's first address as a 32-bit number. */
  base: number;
  prefix: number;
  /** How many /28s it holds. */
  slots: number;
}

export interface SlotNetwork {
  slot: number;
  subnet: string;
  gateway: string;
  bridge: string;
}

export function parsePool(cidr: string): SubnetPool {
  const [address, prefixText] = cidr.split("/");
  const prefix = Number(prefixText);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return { base: (toNumber(address) & mask) >>> 0, prefix, slots: 2 ** (SLOT_PREFIX - prefix) };
}

export function slotNetwork(pool: SubnetPool, slot: number): SlotNetwork {
  if (!Number.isInteger(slot) || slot < 0 || slot >= pool.slots) {
    throw new RangeError(`slot ${slot} is outside the pool (0-${pool.slots - 1})`);
  }
  const first = pool.base + slot * 2 ** (32 - SLOT_PREFIX);
  return {
    slot,
    subnet: `${toAddress(first)}/${SLOT_PREFIX}`,
    gateway: toAddress(first + 1),
    bridge: `${BRIDGE_PREFIX}${slot}`,
  };
}

/** The slot whose /28 holds this address, or null when it is outside the pool. */
export function slotOfAddress(pool: SubnetPool, address: string): number | null {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return null;
  const offset = toNumber(address) - pool.base;
  if (offset < 0 || offset >= pool.slots * 2 ** (32 - SLOT_PREFIX)) return null;
  return Math.floor(offset / 2 ** (32 - SLOT_PREFIX));
}

function toNumber(address: string): number {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${address}`);
  }
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function toAddress(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}
