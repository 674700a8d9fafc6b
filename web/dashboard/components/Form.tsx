import type { ComponentChildren } from "preact";
import { CSRF_FIELD } from "@/web/dashboard/csrf.ts";
import { usePage } from "@/web/dashboard/page-context.ts";

/** The session's CSRF token; every form of a logged-in page carries it. */
export function CsrfField() {
  const { csrfToken } = usePage();
  return csrfToken ? <input type="hidden" name={CSRF_FIELD} value={csrfToken} /> : null;
}

/** A POST form with its CSRF token. */
export function PostForm(
  props: {
    action: string;
    children: ComponentChildren;
    class?: string;
    label?: string;
    /** Leave validation to the server, whose messages show inline (the same with JS off). */
    noValidate?: boolean;
  },
) {
  return (
    <form
      method="post"
      action={props.action}
      class={props.class}
      aria-label={props.label}
      noValidate={props.noValidate}
    >
      <CsrfField />
      {props.children}
    </form>
  );
}

export interface FieldProps {
  id: string;
  name: string;
  label: string;
  type?: string;
  value?: string;
  error?: string;
  hint?: string;
  autocomplete?: string;
  required?: boolean;
  minLength?: number;
  maxLength?: number;
  autofocus?: boolean;
  spellcheck?: boolean;
}

/** A labelled input; its hint and error are tied to it with aria-describedby. */
export function Field(p: FieldProps) {
  const described = [p.hint && `${p.id}-hint`, p.error && `${p.id}-error`].filter(Boolean);
  return (
    <div class={`field${p.error ? " field-invalid" : ""}`}>
      <label for={p.id}>{p.label}</label>
      {p.hint && <p class="hint" id={`${p.id}-hint`}>{p.hint}</p>}
      {p.error && (
        <p class="field-error" id={`${p.id}-error`}>
          <span aria-hidden="true">⚠</span> {p.error}
        </p>
      )}
      <input
        id={p.id}
        name={p.name}
        type={p.type ?? "text"}
        value={p.value ?? ""}
        autocomplete={p.autocomplete}
        required={p.required}
        minLength={p.minLength}
        maxLength={p.maxLength}
        autofocus={p.autofocus}
        spellcheck={p.spellcheck}
        aria-invalid={p.error ? "true" : undefined}
        aria-describedby={described.length > 0 ? described.join(" ") : undefined}
      />
    </div>
  );
}

/** A form-level problem (bad credentials, rate limit), announced when the page loads. */
export function FormError({ message }: { message?: string | null }) {
  if (!message) return null;
  return (
    <div class="alert alert-error" role="alert">
      {message}
    </div>
  );
}
