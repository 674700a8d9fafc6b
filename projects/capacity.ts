import type { Config } from "@/core/config.ts";
import type { Sql } from "@/infra/db/database.ts";
import { AppError } from "@/core/errors.ts";
import type { Status } from "@/shared/status.ts";

/** States in which a project holds a container (or is about to, or still does). */
export const HOLDS_A_SANDBOX: Status[] = ["creating", "running", "snapshotting", "restoring"];

const CAPACITY_LOCK = 0x706f6d63; // "pomc": one capacity decision at a time, across instances
const RETRY_AFTER_SECONDS = 60;

export const capacityExhausted = (max: number) =>
  new AppError(
    "capacity_exhausted",
    503,
    `This host runs its most sandboxes at once (${max}); try again when one stops`,
    { headers: { "Retry-After": String(RETRY_AFTER_SECONDS) } },
  );

/**
 * Inside the transaction that is about to claim a sandbox (a create, a start): refuses when
 * MAX_RUNNING_SANDBOXES are already claimed. The lock makes concurrent claims take turns, so
 * two cannot both take the last place; it is released when the transaction ends.
 */
export async function claimCapacity(tx: Sql, config: Config): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(${CAPACITY_LOCK})`;
  const [{ count }] = await tx<{ count: number }[]>`
    SELECT count(*)::int AS count FROM projects WHERE status IN ${tx(HOLDS_A_SANDBOX)}`;
  const max = config.isolation.maxRunningSandboxes;
  if (count >= max) throw capacityExhausted(max);
}
