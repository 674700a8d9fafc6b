import { labelOf } from "./status.ts";

/**
 * A project's status as a word and a shape, never colour alone (static/styles.css styles
 * .badge-<status>). The one badge: server-rendered pages and the islands both render it, so
 * hydration finds the markup it would have made.
 */
export function StatusBadge({ status, id }: { status: string; id?: string }) {
  return (
    <span class={`badge badge-${status}`} data-status={status} id={id}>
      <span class="badge-dot" aria-hidden="true" />
      {labelOf(status)}
    </span>
  );
}
