/** A UUID in its canonical text form (any version; case-insensitive, as PostgreSQL reads it). */
export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checked before a query: PostgreSQL would answer a malformed uuid with an error, not a miss. */
export const isUuid = (value: unknown): value is string =>
  typeof value === "string" && uuidPattern.test(value);
