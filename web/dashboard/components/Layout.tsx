import type { ComponentChildren } from "preact";
import { usePage } from "@/web/dashboard/page-context.ts";
import { PostForm } from "./Form.tsx";
import { IslandScripts } from "./Island.tsx";

export interface LayoutProps {
  title: string;
  children: ComponentChildren;
  /** While a project is changing state: without JavaScript, the page reloads itself. */
  autoRefreshWithoutJs?: boolean;
  /** Narrow, centred column (login and signup). */
  narrow?: boolean;
}

export function Layout(props: LayoutProps) {
  const { assets } = usePage();
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {/* The server says no-referrer; same-origin lets forms and fetches carry Origin. */}
        <meta name="referrer" content="same-origin" />
        <meta name="color-scheme" content="light dark" />
        <title>{`${props.title} · Pomodex`}</title>
        <link rel="stylesheet" href={assets.urls["styles.css"]} />
        {assets.urls["favicon.svg"] && (
          <link rel="icon" type="image/svg+xml" href={assets.urls["favicon.svg"]} />
        )}
        {props.autoRefreshWithoutJs && (
          <noscript>
            <meta http-equiv="refresh" content="5" />
          </noscript>
        )}
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <SiteHeader />
        <main id="main" tabIndex={-1} class={props.narrow ? "main narrow" : "main"}>
          <FlashMessage />
          {props.children}
        </main>
        <footer class="site-footer">
          <p>
            Pomodex · <a href="/openapi.json">API</a>
          </p>
        </footer>
        <IslandScripts />
      </body>
    </html>
  );
}

function SiteHeader() {
  const { viewer, path } = usePage();
  const current = (href: string) =>
    (href === "/dashboard"
        ? path === "/dashboard" || path.startsWith("/dashboard/projects")
        : path.startsWith(href))
      ? "page" as const
      : undefined;
  return (
    <header class="site-header">
      <a class="brand" href={viewer ? "/dashboard" : "/login"}>
        <span class="brand-mark" aria-hidden="true">▣</span> Pomodex
      </a>
      <nav aria-label="Main">
        <ul>
          {viewer
            ? (
              <>
                <li>
                  <a href="/dashboard" aria-current={current("/dashboard")}>Projects</a>
                </li>
                {viewer.role === "admin" && (
                  <li>
                    <a href="/dashboard/admin" aria-current={current("/dashboard/admin")}>Admin</a>
                  </li>
                )}
                <li class="nav-user">
                  <span class="muted">{viewer.email}</span>
                </li>
                <li>
                  <PostForm action="/logout" class="inline-form" label="Log out">
                    <button type="submit" class="button button-quiet">Log out</button>
                  </PostForm>
                </li>
              </>
            )
            : (
              <>
                <li>
                  <a href="/login" aria-current={current("/login")}>Log in</a>
                </li>
                <li>
                  <a href="/signup" aria-current={current("/signup")}>Sign up</a>
                </li>
              </>
            )}
        </ul>
      </nav>
    </header>
  );
}

/** The ?flash= message, in a live region so screen readers read it on arrival. */
function FlashMessage() {
  const { flash } = usePage();
  return (
    <div class="flash-region" role={flash?.kind === "error" ? "alert" : "status"}>
      {flash && <p class={`alert alert-${flash.kind}`}>{flash.text}</p>}
    </div>
  );
}
