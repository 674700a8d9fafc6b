import { formatTime, relativeTime } from "@/shared/format.ts";

/** An absolute UTC time, with "(3 min ago)" when asked. */
export function Time(
  { at, relative }: { at: Date | string | null | undefined; relative?: boolean },
) {
  if (!at) return <span>never</span>;
  const iso = typeof at === "string" ? at : at.toISOString();
  return (
    <span>
      <time datetime={iso}>{formatTime(iso)}</time>
      {relative && <span class="muted">({relativeTime(iso)})</span>}
    </span>
  );
}
