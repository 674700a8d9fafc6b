import type { ComponentType } from "preact";
import { usePage } from "@/web/dashboard/page-context.ts";
import { serializeProps } from "@/web/dashboard/render.tsx";

/**
 * Server side of an island: the component's HTML inside a `data-island` element, its props
 * (small, serializable, escaped) in the JSON script right after it, and its bundle added
 * to the page. web/dashboard/islands/browser/mount.ts hydrates it in the browser.
 */
export function Island<P extends object>(
  { name, component: Component, props }: { name: string; component: ComponentType<P>; props: P },
) {
  usePage().islands.add(name);
  return (
    <>
      <div data-island={name} class="island">
        <Component {...props} />
      </div>
      <script
        type="application/json"
        data-island-props=""
        // deno-lint-ignore react-no-danger -- serializeProps escapes <, > and &
        dangerouslySetInnerHTML={{ __html: serializeProps(props) }}
      />
    </>
  );
}

/** One module script per island the page rendered (after them, so the set is complete). */
export function IslandScripts() {
  const { islands, assets } = usePage();
  return (
    <>
      {[...islands].filter((name) => assets.islands[name]).map((name) => (
        <script type="module" src={assets.islands[name]} key={name} />
      ))}
    </>
  );
}
