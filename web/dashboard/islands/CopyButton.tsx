import { useEffect, useState } from "preact/hooks";

/**
 * Copies `text` to the clipboard. Rendered only once JavaScript runs (the server sends
 * nothing), since without it the text next to it is selectable anyway.
 */
export default function CopyButton(props: { text: string; label: string }) {
  const [ready, setReady] = useState(false);
  const [done, setDone] = useState("");
  useEffect(() => setReady(typeof navigator.clipboard?.writeText === "function"), []);
  if (!ready) return null;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setDone("Copied");
    } catch {
      setDone("Copy failed: select the text and copy it");
    }
    setTimeout(() => setDone(""), 2500);
  };
  return (
    <span class="copy">
      <button type="button" class="button button-small" onClick={copy}>
        {props.label}
      </button>
      <span class="copy-done" role="status" aria-live="polite">{done}</span>
    </span>
  );
}
