import { type ComponentType, h, hydrate } from "preact";

/**
 * Client side of web/dashboard/components/Island.tsx: each `[data-island=Name]` element is followed by
 * a `<script type="application/json" data-island-props>` with its props; hydrate it.
 */
// deno-lint-ignore no-explicit-any -- islands declare their own props; JSON is what arrives
export function mountIslands(name: string, Island: ComponentType<any>) {
  for (const el of document.querySelectorAll<HTMLElement>(`[data-island="${name}"]`)) {
    const script = el.nextElementSibling;
    const props = script?.matches("script[type='application/json'][data-island-props]")
      ? JSON.parse(script.textContent || "{}")
      : {};
    hydrate(h(Island, props), el);
  }
}
