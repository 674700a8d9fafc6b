import { labelOf } from "@/shared/status.ts";

/** The status as text and a shape, never colour alone. Islands render the same markup. */
export function StatusBadge({ status, id }: { status: string; id?: string }) {
  return (
    <span class={`badge badge-${status}`} data-status={status} id={id}>
      <span class="badge-dot" aria-hidden="true" />
      {labelOf(status)}
    </span>
  );
}
