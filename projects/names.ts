import { validationError } from "@/core/errors.ts";

/** A project name as stored: trimmed, 1-64 characters, nothing invisible or controlling. */
export function validateName(raw: unknown): string {
  const name = typeof raw === "string" ? raw.trim() : "";
  if (name.length < 1 || name.length > 64) {
    throw validationError([{ path: "name", message: "must be 1-64 characters after trimming" }]);
  }
  // deno-lint-ignore no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) {
    throw validationError([{ path: "name", message: "must not contain control characters" }]);
  }
  // Format characters (Unicode Cf) are invisible, and some reorder the text around them
  // (U+202E RIGHT-TO-LEFT OVERRIDE): a name would not read as what it is.
  if (/\p{Cf}/u.test(name)) {
    throw validationError([{
      path: "name",
      message: "must not contain invisible format characters (Unicode Cf)",
    }]);
  }
  return name;
}
