import { concatBytes } from "@/core/bytes.ts";
import { gzipSync } from "node:zlib";
import type { Logger } from "@/core/log.ts";

/** A file served under /static/, kept in memory with its gzip form. */
export interface Asset {
  body: Uint8Array;
  gzip: Uint8Array;
  contentType: string;
}

export interface AssetManifest {
  /** Source name ("styles.css", "favicon.svg") → URL with a content hash in it. */
  urls: Record<string, string>;
  /** Island name ("Terminal") → URL of its entry module; empty when bundling failed. */
  islands: Record<string, string>;
  /** Hashed file name → the file. */
  files: Map<string, Asset>;
}

export interface AssetStore {
  /** Builds on first use (bundling takes a second or two), then answers from memory. */
  manifest(): Promise<AssetManifest>;
}

export const STATIC_PREFIX = "/static/";

const root = new URL("../../", import.meta.url);
const islands = new URL("./islands/", import.meta.url);
const types: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  txt: "text/plain; charset=utf-8",
};

// One build per process: every app in it (tests make several) serves the same files.
let shared: Promise<AssetManifest> | undefined;

export function createAssetStore(log: Logger): AssetStore {
  return { manifest: () => shared ??= buildAssets(log) };
}

/**
 * static/* under content-hashed names (styles.css with xterm's stylesheet appended), and
 * the islands bundled by `deno bundle` with code splitting, so Preact and the shared
 * client code load once per page. A failed bundle is logged and the pages run without
 * islands: they are readable and usable with JavaScript off by design.
 */
async function buildAssets(log: Logger): Promise<AssetManifest> {
  const files = new Map<string, Asset>();
  const urls: Record<string, string> = {};
  const add = async (name: string, body: Uint8Array, hashed = true): Promise<string> => {
    const dot = name.lastIndexOf(".");
    const ext = name.slice(dot + 1);
    const fileName = hashed ? `${name.slice(0, dot)}.${await shortHash(body)}.${ext}` : name;
    files.set(fileName, {
      body,
      gzip: gzip(body),
      contentType: types[ext] ?? "application/octet-stream",
    });
    return STATIC_PREFIX + fileName;
  };

  for await (const entry of Deno.readDir(new URL("static/", root))) {
    if (!entry.isFile || entry.name.startsWith(".")) continue;
    let body: Uint8Array = await Deno.readFile(new URL(`static/${entry.name}`, root));
    if (entry.name === "styles.css") {
      const xterm = await Deno.readFile(
        new URL("node_modules/@xterm/xterm/css/xterm.css", root),
      );
      body = concatBytes(body, new TextEncoder().encode("\n/* @xterm/xterm (MIT) */\n"), xterm);
    }
    urls[entry.name] = await add(entry.name, body);
  }

  const islands: Record<string, string> = {};
  const started = performance.now();
  try {
    for (const [fileName, body] of await bundleIslands()) {
      // Entries get our hash; esbuild already names chunks by their content.
      const entry = /^([A-Z][A-Za-z0-9]*)\.js$/.exec(fileName);
      if (entry) islands[entry[1]] = await add(fileName, body);
      else await add(fileName, body, false);
    }
    log.info("dashboard: islands bundled", {
      islands: Object.keys(islands),
      ms: Math.round(performance.now() - started),
    });
  } catch (err) {
    log.error("dashboard: bundling the islands failed; pages run without them", {
      error: (err as Error).message.slice(0, 2000),
    });
  }
  return { urls, islands, files };
}

/** The island names: web/dashboard/islands/<Name>.tsx, one bundle entry each. */
export async function islandNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(islands)) {
    const m = /^([A-Z][A-Za-z0-9]*)\.tsx$/.exec(entry.name);
    if (entry.isFile && m) names.push(m[1]);
  }
  return names.sort();
}

const BUNDLE_TIMEOUT_MS = 180_000;

/** Runs `deno bundle` into a temporary directory and returns the files it wrote. */
async function bundleIslands(): Promise<[string, Uint8Array][]> {
  const tmp = await Deno.makeTempDir({ prefix: "pomodex-islands-" });
  try {
    const entries: string[] = [];
    await Deno.mkdir(`${tmp}/entries`);
    const mount = new URL("browser/mount.ts", islands).href;
    for (const name of await islandNames()) {
      const path = `${tmp}/entries/${name}.ts`;
      const island = new URL(`${name}.tsx`, islands).href;
      await Deno.writeTextFile(
        path,
        `import Island from ${JSON.stringify(island)};\n` +
          `import { mountIslands } from ${JSON.stringify(mount)};\n` +
          `mountIslands(${JSON.stringify(name)}, Island);\n`,
      );
      entries.push(path);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--platform=browser",
        "--format=esm",
        "--minify",
        "--code-splitting",
        `--config=${new URL("deno.json", root).pathname}`,
        `--outdir=${tmp}/out`,
        ...entries,
      ],
      cwd: root.pathname,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // A bundler that hangs (a registry it waits on, say) must not hold the start forever.
      signal: AbortSignal.timeout(BUNDLE_TIMEOUT_MS),
    }).output();
    if (!out.success) {
      throw new Error(
        `deno bundle exited with ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    const files: [string, Uint8Array][] = [];
    for await (const entry of Deno.readDir(`${tmp}/out`)) {
      if (entry.isFile && entry.name.endsWith(".js")) {
        files.push([entry.name, await Deno.readFile(`${tmp}/out/${entry.name}`)]);
      }
    }
    if (files.length === 0) throw new Error("deno bundle wrote no files");
    return files;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function shortHash(body: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body as BufferSource));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// Level 9: built once, served many times.
function gzip(body: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(body, { level: 9 }));
}
