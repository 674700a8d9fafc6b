import { z } from "zod";

// The API's rule (web/api/auth.ts), so a page never accepts what the API would refuse.
const Email = z.email().max(254);

export function validateEmail(email: string): string | null {
  if (!email) return "Enter your email address.";
  return Email.safeParse(email).success
    ? null
    : "Enter a valid email address, like ada@example.com.";
}
