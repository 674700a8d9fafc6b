import { Hono } from "hono";
import type { AppDeps } from "../app.ts";
import { type AuthFormState, LoginPage, SignupPage } from "../components/pages/AuthPages.tsx";
import { clearRefreshCookie, readRefreshCookie, setRefreshCookie } from "../lib/auth/cookies.ts";
import { login, logout } from "../lib/auth/login.ts";
import { passwordLengthProblem } from "../lib/auth/passwords.ts";
import { registerUser } from "../lib/auth/users.ts";
import { readForm } from "../lib/dashboard/csrf.ts";
import { withFlash } from "../lib/dashboard/flash.ts";
import {
  asAppContext,
  isAppError,
  metaOf,
  pageRenderer,
  retryAfterSeconds,
} from "../lib/dashboard/http.ts";
import { safeNext } from "../lib/dashboard/next.ts";
import type { PageEnv } from "../lib/dashboard/session.ts";
import { validateEmail } from "../lib/dashboard/validate.ts";

const BAD_CREDENTIALS = "Email or password is incorrect.";
const tooMany = (seconds: number) => `Too many attempts — try again in ${seconds} seconds.`;

/** /, /login, /signup, /logout: the dashboard's own forms over lib/auth. */
export function authPages(deps: AppDeps) {
  const { auth } = deps;
  const render = pageRenderer(deps.dashboard);
  const app = new Hono<PageEnv>();

  app.get("/", (c) => c.redirect(c.var.viewer ? "/dashboard" : "/login", 303));

  app.get("/login", (c) => {
    const next = nextOf(c.req.query("next"));
    if (c.var.viewer) return c.redirect(next ?? "/dashboard", 303);
    return render(c, <LoginPage next={next} />);
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
      return render(c, <LoginPage email={email} next={next} fieldErrors={fieldErrors} />, 422);
    }
    try {
      const pair = await login(auth, { email, password }, metaOf(c), "browser");
      setRefreshCookie(asAppContext(c), pair.refreshToken, pair.sessionExpiresAt, auth.clock());
      return c.redirect(next ?? "/dashboard", 303);
    } catch (err) {
      if (isAppError(err, "rate_limited")) {
        return render(
          c,
          <LoginPage email={email} next={next} error={tooMany(retryAfterSeconds(err))} />,
          429,
        );
      }
      if (isAppError(err, "invalid_credentials", "validation_error")) {
        return render(c, <LoginPage email={email} next={next} error={BAD_CREDENTIALS} />, 401);
      }
      throw err;
    }
  });

  app.get("/signup", (c) => {
    const next = nextOf(c.req.query("next"));
    if (c.var.viewer) return c.redirect(next ?? "/dashboard", 303);
    return render(c, <SignupPage next={next} />);
  });

  app.post("/signup", async (c) => {
    const form = await readForm(c);
    const email = (form.email ?? "").trim();
    const password = form.password ?? "";
    const next = nextOf(form.next);
    const fieldErrors: AuthFormState["fieldErrors"] & object = {
      email: validateEmail(email) ?? undefined,
      password: password ? passwordProblem(password) : "Choose a password.",
    };
    const again = (status: number, extra: { error?: string; fieldErrors?: typeof fieldErrors }) =>
      render(c, <SignupPage email={email} next={next} {...extra} />, status);
    if (fieldErrors.email || fieldErrors.password) return again(422, { fieldErrors });
    try {
      await registerUser(auth, { email, password }, metaOf(c));
      const pair = await login(auth, { email, password }, metaOf(c), "browser");
      setRefreshCookie(asAppContext(c), pair.refreshToken, pair.sessionExpiresAt, auth.clock());
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
      throw err;
    }
  });

  app.post("/logout", async (c) => {
    const token = readRefreshCookie(asAppContext(c));
    if (token) await logout(auth, token, metaOf(c));
    clearRefreshCookie(asAppContext(c));
    return c.redirect(withFlash("/login", "logged_out"), 303);
  });

  return app;
}

/** A `next` worth keeping: a path on this site other than the default. */
function nextOf(raw: string | undefined): string | undefined {
  const next = safeNext(raw, "");
  return next && next !== "/dashboard" ? next : undefined;
}

function passwordProblem(password: string): string | undefined {
  const problem = passwordLengthProblem(password);
  return problem ? `Your password ${problem}.` : undefined;
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
