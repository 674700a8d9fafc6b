import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../../lib/auth/passwords.ts";
import { Field, FormError } from "../Form.tsx";
import { Layout } from "../Layout.tsx";

export interface AuthFormState {
  email?: string;
  next?: string;
  /** Form-level problem: bad credentials, rate limit. */
  error?: string | null;
  fieldErrors?: { email?: string; password?: string };
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
      <p>
        New here? <a href={withNext("/signup", s.next)}>Create an account</a>
      </p>
    </Layout>
  );
}

export function SignupPage(s: AuthFormState) {
  return (
    <Layout title="Sign up" narrow>
      <h1>Create your account</h1>
      <FormError message={s.error} />
      <form method="post" action="/signup" class="stack" novalidate>
        <input type="hidden" name="next" value={s.next ?? ""} />
        <Field
          id="email"
          name="email"
          label="Email"
          type="email"
          value={s.email}
          autocomplete="email"
          error={s.fieldErrors?.email}
          required
          autofocus
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
