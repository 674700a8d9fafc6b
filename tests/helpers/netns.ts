/**
 * A network namespace joined to this host by a veth pair, so a test can send real traffic
 * from an address that is not loopback (and see what the server's socket peer really is).
 * Needs root (ip netns). Everything stays on this machine: 10.231.x.y/30, no routes out.
 */
export interface TestNetns extends AsyncDisposable {
  name: string;
  /** This host's end of the pair: bind servers here. */
  hostAddress: string;
  /** The namespace's end: what the server sees as the peer. */
  peerAddress: string;
  /** Runs a command inside the namespace. */
  run(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  remove(): Promise<void>;
}

async function ip(args: string[], check = true) {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (check && out.code !== 0) throw new Error(`ip ${args.join(" ")}: ${stderr.trim()}`);
  return out.code;
}

/**
 * `prefix` picks the /16 the pair's /30 comes from: 10.231 (private) by default; 198.18 (the
 * benchmarking range, which the sandbox firewall treats as public) for a stand-in internet.
 */
export async function createNetns(opts: { prefix?: "10.231" | "198.18" } = {}): Promise<TestNetns> {
  const id = crypto.randomUUID().replace(/-/g, "").slice(0, 6);
  const name = `pdx-test-${id}`;
  const hostIf = `pdxh${id}`, peerIf = `pdxn${id}`; // interface names: at most 15 characters
  // A random /30 in the /16, so parallel test files do not collide.
  const block = crypto.getRandomValues(new Uint16Array(1))[0] & 0x3fff;
  const base = block * 4;
  const prefix = opts.prefix ?? "10.231";
  const addr = (n: number) => `${prefix}.${(base + n) >> 8}.${(base + n) & 0xff}`;
  const hostAddress = addr(1), peerAddress = addr(2);

  const remove = async () => {
    await ip(["link", "del", hostIf], false);
    await ip(["netns", "del", name], false);
  };
  try {
    await ip(["netns", "add", name]);
    await ip(["link", "add", hostIf, "type", "veth", "peer", "name", peerIf]);
    await ip(["link", "set", peerIf, "netns", name]);
    await ip(["addr", "add", `${hostAddress}/30`, "dev", hostIf]);
    await ip(["link", "set", hostIf, "up"]);
    await ip(["-n", name, "addr", "add", `${peerAddress}/30`, "dev", peerIf]);
    await ip(["-n", name, "link", "set", peerIf, "up"]);
    await ip(["-n", name, "link", "set", "lo", "up"]);
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    name,
    hostAddress,
    peerAddress,
    async run(cmd) {
      const out = await new Deno.Command("ip", {
        args: ["netns", "exec", name, ...cmd],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    },
    remove,
    [Symbol.asyncDispose]: remove,
  };
}
