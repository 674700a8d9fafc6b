import { Hono } from "hono";
import type { AppDeps } from "@/web/deps.ts";
import {
  type AuthFormState,
  LoginPage,
  SignupPage,
} from "@/web/dashboard/components/pages/AuthPages.tsx";
import { clearRefreshCookie, readRefreshCookie, setRefreshCookie } from "@/web/http/cookies.ts";
import { login, logout } from "@/auth/login.ts";
import { passwordLengthProblem } from "@/auth/passwords.ts";
import { registerUser } from "@/auth/users.ts";
import { readForm } from "@/web/dashboard/csrf.ts";
import { withFlash } from "@/web/dashboard/flash.ts";
import { isAppError, pageRenderer, retryAfterSeconds } from "@/web/dashboard/http.ts";
import { safeNext } from "@/web/dashboard/next.ts";
import type { AppEnv } from "@/web/http/types.ts";
import { validateEmail } from "@/web/dashboard/validate.ts";

const BAD_CREDENTIALS = "Email or password is incorrect.";
const INVITE_REQUIRED = "Enter your invite code.";
// One message for unknown, used, expired and revoked codes, as the API gives one answer.
const INVITE_INVALID =
  "This invite code cannot be used. It may be mistyped, used, expired or revoked: ask for a new one.";
const tooMany = (seconds: number) => `Too many attempts — try again in ${seconds} seconds.`;

/** /, /login, /signup, /logout: the dashboard's own forms over auth. */
export function authPages(deps: AppDeps) {
  const { auth } = deps;
  const registration = deps.config.registration;
  const render = pageRenderer(deps.dashboard);
  const app = new Hono<AppEnv>();

  app.get("/", (c) => c.redirect(c.var.viewer ? "/dashboard" : "/login", 303));

  app.get("/login", (c) => {
    const next = nextOf(c.req.query("next"));
    if (c.var.viewer) return c.redirect(next ?? "/dashboard", 303);
    return render(c, <LoginPage next={next} registration={registration} />);
  });

  app.post("/login", async (c) => {
    const form = await readForm(c);
    const email = (form.email ?? "").trim();
    const password = form.password ?? "";
    const next = nextOf(form.next);
    const fieldErrors = {
      email: email ? undefined : "Enter your email address.",
      password: password ? undefined : "Enter your password.",
    };
    if (!email || !password) {
      return render(
        c,
        <LoginPage
          email={email}
          next={next}
          fieldErrors={fieldErrors}
          registration={registration}
        />,
        422,
      );
    }
    try {
      const pair = await login(auth, { email, password }, c.var.request, "browser");
      setRefreshCookie(c, pair.refreshToken, pair.sessionExpiresAt, auth.clock());
      return c.redirect(next ?? "/dashboard", 303);
    } catch (err) {
      if (isAppError(err, "rate_limited")) {
        return render(
          c,
          <LoginPage
            email={email}
            next={next}
            error={tooMany(retryAfterSeconds(err))}
            registration={registration}
          />,
          429,
        );
      }
      if (isAppError(err, "invalid_credentials", "validation_error")) {
        return render(
          c,
          <LoginPage
            email={email}
            next={next}
            error={BAD_CREDENTIALS}
            registration={registration}
          />,
          401,
        );
      }
      throw err;
    }
  });

  app.get("/signup", (c) => {
    const next = nextOf(c.req.query("next"));
    if (c.var.viewer) return c.redirect(next ?? "/dashboard", 303);
    // An admin's invite link: /signup?invite=<code> fills the code in.
    const invite = registration === "invite" ? inviteOf(c.req.query("invite")) : undefined;
    return render(c, <SignupPage next={next} registration={registration} invite={invite} />);
  });

  app.post("/signup", async (c) => {
    const form = await readForm(c);
    const email = (form.email ?? "").trim();
    const password = form.password ?? "";
    const next = nextOf(form.next);
    if (registration === "closed") {
      return render(c, <SignupPage next={next} registration={registration} />, 403);
    }
    const invite = registration === "invite" ? inviteOf(form.invite_code) : undefined;
    const fieldErrors: AuthFormState["fieldErrors"] & object = {
      email: validateEmail(email) ?? undefined,
      password: password ? passwordProblem(password) : "Choose a password.",
      invite: registration === "invite" && !invite ? INVITE_REQUIRED : undefined,
    };
    const again = (status: number, extra: { error?: string; fieldErrors?: typeof fieldErrors }) =>
      render(
        c,
        <SignupPage
          email={email}
          next={next}
          registration={registration}
          invite={invite}
          {...extra}
        />,
        status,
      );
    if (fieldErrors.email || fieldErrors.password || fieldErrors.invite) {
      return again(422, { fieldErrors });
    }
    try {
      await registerUser(auth, { email, password, inviteCode: invite }, c.var.request);
      const pair = await login(auth, { email, password }, c.var.request, "browser");
      setRefreshCookie(c, pair.refreshToken, pair.sessionExpiresAt, auth.clock());
      return c.redirect(next ?? withFlash("/dashboard", "signed_up"), 303);
    } catch (err) {
      if (isAppError(err, "email_taken")) {
        return again(409, {
          fieldErrors: { email: "An account with this email already exists. Log in instead." },
        });
      }
      if (isAppError(err, "validation_error")) {
        const problem = err.extra.errors?.[0];
        return again(422, {
          fieldErrors: problem?.path === "password"
            ? { password: capitalize(problem.message) }
            : { email: "Enter a valid email address." },
        });
      }
      if (isAppError(err, "rate_limited")) {
        return again(429, { error: tooMany(retryAfterSeconds(err)) });
      }
      if (isAppError(err, "invite_required", "invite_invalid")) {
        return again(403, {
          fieldErrors: {
            invite: err.code === "invite_required" ? INVITE_REQUIRED : INVITE_INVALID,
          },
        });
      }
      if (isAppError(err, "registration_closed")) {
        return render(c, <SignupPage next={next} registration="closed" />, 403);
      }
      throw err;
    }
  });

  app.post("/logout", async (c) => {
    const token = readRefreshCookie(c);
    if (token) await logout(auth, token, c.var.request);
    clearRefreshCookie(c);
    return c.redirect(withFlash("/login", "logged_out"), 303);
  });

  return app;
}

/** A `next` worth keeping: a path on this site other than the default. */
function nextOf(raw: string | undefined): string | undefined {
  const next = safeNext(raw, "");
  return next && next !== "/dashboard" ? next : undefined;
}

/** A code as typed or linked, trimmed and bounded (a longer one is no code anyway). */
function inviteOf(raw: string | undefined): string | undefined {
  return (raw ?? "").trim().slice(0, 256) || undefined;
}

function passwordProblem(password: string): string | undefined {
  const problem = passwordLengthProblem(password);
  return problem ? `Your password ${problem}.` : undefined;
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
