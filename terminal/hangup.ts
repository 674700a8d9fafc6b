import type { DockerClient } from "@/infra/docker/mod.ts";

/**
 * Every process started from a terminal carries this variable with the shell's own value
 * (children inherit it), so the whole tree can be found from inside the container.
 */
export const SESSION_VAR = "POMODEX_TERMINAL";

const HUP_GRACE_MS = 1_500;

/**
 * Hangs up a terminal the way closing a real one does (SIGHUP to everything started from
 * it), then kills whatever is still there after a short grace: a closed terminal leaves
 * nothing running, including jobs that ignore SIGHUP. Best effort: a container that is
 * gone has nothing left to end. Returns how many processes had to be killed.
 */
export async function hangUp(
  engine: Pick<DockerClient, "signalMarked">,
  containerId: string,
  marker: string,
  user: string,
): Promise<number> {
  const users = user === "0" || user === "root" ? ["0"] : [user, "0"];
  const signalAll = (signal: "HUP" | "KILL" | "0") =>
    engine.signalMarked(containerId, marker, signal, users);
  try {
    if ((await signalAll("HUP")) === 0) return 0;
    const until = Date.now() + HUP_GRACE_MS;
    let left = 1;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      left = await signalAll("0");
      if (left === 0) return 0;
    }
    return await signalAll("KILL");
  } catch {
    return 0; // the container stopped or went away: its processes went with it
  }
}
