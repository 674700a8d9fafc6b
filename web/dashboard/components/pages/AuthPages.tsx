import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "@/auth/passwords.ts";
import { Field, FormError } from "@/web/dashboard/components/Form.tsx";
import { Layout } from "@/web/dashboard/components/Layout.tsx";

export interface AuthFormState {
  email?: string;
  next?: string;
  /** Form-level problem: bad credentials, rate limit. */
  error?: string | null;
  fieldErrors?: { email?: string; password?: string; invite?: string };
  /** REGISTRATION: the sign-up page asks for an invite code, or says sign-up is closed. */
  registration?: "open" | "invite" | "closed";
  /** The invite code typed, or given in the link (?invite=). */
  invite?: string;
}

export function LoginPage(s: AuthFormState) {
  return (
    <Layout title="Log in" narrow>
      <h1>Log in</h1>
      <FormError message={s.error} />
      <form method="post" action="/login" class="stack" novalidate>
        <input type="hidden" name="next" value={s.next ?? ""} />
        <Field
          id="email"
          name="email"
          label="Email"
          type="email"
          value={s.email}
          autocomplete="username"
          error={s.fieldErrors?.email}
          required
          autofocus={!s.email}
          spellcheck={false}
        />
        <Field
          id="password"
          name="password"
          label="Password"
          type="password"
          autocomplete="current-password"
          error={s.fieldErrors?.password}
          required
          autofocus={!!s.email}
        />
        <button type="submit" class="button button-primary">Log in</button>
      </form>
      {s.registration !== "closed" && (
        <p>
          New here? <a href={withNext("/signup", s.next)}>Create an account</a>
        </p>
      )}
    </Layout>
  );
}

export function SignupPage(s: AuthFormState) {
  if (s.registration === "closed") {
    return (
      <Layout title="Sign up" narrow>
        <h1>Registration is closed</h1>
        <FormError message={s.error} />
        <p>
          This server does not take new accounts. If you should have one, ask its administrator.
        </p>
        <p>
          Already have an account? <a href={withNext("/login", s.next)}>Log in</a>
        </p>
      </Layout>
    );
  }
  const byInvite = s.registration === "invite";
  return (
    <Layout title="Sign up" narrow>
      <h1>Create your account</h1>
      <FormError message={s.error} />
      {byInvite && !s.fieldErrors?.invite && (
        <p>Signing up here needs an invite code from an administrator.</p>
      )}
      <form method="post" action="/signup" class="stack" novalidate>
        <input type="hidden" name="next" value={s.next ?? ""} />
        {byInvite && (
          <Field
            id="invite"
            name="invite_code"
            label="Invite code"
            value={s.invite}
            autocomplete="off"
            hint="It starts with pdxinv_. An invite link fills it in for you."
            error={s.fieldErrors?.invite}
            required
            autofocus={!s.invite}
            spellcheck={false}
          />
        )}
        <Field
          id="email"
          name="email"
          label="Email"
          type="email"
          value={s.email}
          autocomplete="email"
          error={s.fieldErrors?.email}
          required
          autofocus={!byInvite || !!s.invite}
          spellcheck={false}
        />
        <Field
          id="password"
          name="password"
          label="Password"
          type="password"
          autocomplete="new-password"
          hint={`${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters. A long passphrase is best.`}
          error={s.fieldErrors?.password}
          required
          minLength={PASSWORD_MIN_LENGTH}
          maxLength={PASSWORD_MAX_LENGTH}
        />
        <button type="submit" class="button button-primary">Create account</button>
      </form>
      <p>
        Already have an account? <a href={withNext("/login", s.next)}>Log in</a>
      </p>
    </Layout>
  );
}

function withNext(path: string, next: string | undefined) {
  return next ? `${path}?next=${encodeURIComponent(next)}` : path;
}
