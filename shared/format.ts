/**
 * Times as the dashboard prints them, the same on the server and in the browser (islands
 * hydrate server HTML, so both must produce identical text): UTC, minute precision.
 */
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function formatTime(iso: string | Date | null | undefined): string {
  if (!iso) return "never";
  const d = typeof iso === "string" ? new Date(iso) : iso;
  if (Number.isNaN(d.getTime())) return "unknown";
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()}, ` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`;
}

/** "in 12 min", "3 h ago": for the server-rendered page, relative to when it rendered. */
export function relativeTime(iso: string | Date | null | undefined, now = new Date()): string {
  if (!iso) return "";
  const d = typeof iso === "string" ? new Date(iso) : iso;
  const seconds = Math.round((d.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(seconds);
  // Within a minute either way is "just now" (the database's clock and ours differ a little).
  if (abs < 60) return "just now";
  const text = abs < 3600
    ? `${Math.round(abs / 60)} min`
    : abs < 86400
    ? `${Math.round(abs / 3600)} h`
    : `${Math.round(abs / 86400)} days`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

export function formatBytes(bytes: number | string | null | undefined): string {
  if (bytes === null || bytes === undefined) return "unknown size";
  let n = Number(bytes);
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
