/**
 * Counts live shells per user and per project (a shell waiting for its socket to reconnect
 * still counts: it still runs). In memory, per proxy process: the proxy is one process per
 * host, and the shells it counts are the ones it holds.
 */
export class ShellLimits {
  #perUser = new Map<string, number>();
  #perProject = new Map<string, number>();

  constructor(readonly maxPerUser: number, readonly maxPerProject: number) {}

  /**
   * Takes a slot for both, or none. Synchronous, so no two connections can both take the
   * last slot. Returns the release function (idempotent), or null when over a limit.
   */
  acquire(userId: string, projectId: string): (() => void) | null {
    const u = this.#perUser.get(userId) ?? 0;
    const p = this.#perProject.get(projectId) ?? 0;
    if (u >= this.maxPerUser || p >= this.maxPerProject) return null;
    this.#perUser.set(userId, u + 1);
    this.#perProject.set(projectId, p + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      decrement(this.#perUser, userId);
      decrement(this.#perProject, projectId);
    };
  }

  countFor(userId: string, projectId: string): { user: number; project: number } {
    return {
      user: this.#perUser.get(userId) ?? 0,
      project: this.#perProject.get(projectId) ?? 0,
    };
  }
}

function decrement(map: Map<string, number>, key: string) {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}
