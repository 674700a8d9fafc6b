import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { AssetManifest } from "./assets.ts";
import type { Flash } from "./flash.ts";
import type { Viewer } from "./session.ts";

/** What every server-rendered component may need, set once per page render. */
export interface PageContextValue {
  assets: AssetManifest;
  viewer: Viewer | null;
  /** The session's synchronizer token, for hidden form fields (null when logged out). */
  csrfToken: string | null;
  /** Per-response nonce the CSP allows for <style> (xterm inserts its own). */
  styleNonce: string;
  flash: Flash | null;
  /** Islands rendered so far; the layout adds one <script type="module"> per name. */
  islands: Set<string>;
  /** The path being rendered, for aria-current in the navigation. */
  path: string;
}

export const PageContext = createContext<PageContextValue | null>(null);

export function usePage(): PageContextValue {
  const page = useContext(PageContext);
  if (!page) throw new Error("components need renderPage's PageContext");
  return page;
}
