// The layers of the README's "Architecture" section, checked on every import of the product:
// each layer imports only its own layer or the ones below it, nothing below the web layer
// imports Hono, islands import only what runs in a browser, and no module imports itself
// back through others (no cycle, type-only imports included).
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

/** Highest first; a module may import its own rank or lower. */
const layers: { name: string; rank: number; match: (path: string) => boolean }[] = [
  {
    name: "wiring",
    rank: 4,
    match: (p) => ["main.ts", "terminal.ts", "app.ts", "services.ts"].includes(p),
  },
  { name: "web", rank: 3, match: (p) => p.startsWith("web/") },
  { name: "domain", rank: 2, match: (p) => /^(auth|projects|terminal|jobs)\//.test(p) },
  { name: "infrastructure", rank: 1, match: (p) => p.startsWith("infra/") },
  { name: "core", rank: 0, match: (p) => /^(core|shared)\//.test(p) },
];
const productDirs = ["core", "shared", "infra", "auth", "projects", "terminal", "jobs", "web"];
const wiring = ["main.ts", "terminal.ts", "app.ts", "services.ts"];

function layerOf(path: string) {
  const layer = layers.find((l) => l.match(path));
  if (!layer) throw new Error(`${path} is in no layer: add it to the README and to this test`);
  return layer;
}

async function productFiles(): Promise<string[]> {
  const out = [...wiring];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${path}/`);
      else if (/\.tsx?$/.test(e.name)) out.push(path);
    }
  };
  for (const dir of productDirs) await walk(`${dir}/`);
  return out.sort();
}

/** Every static and dynamic import and export-from of a file, as written. */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  const pattern =
    /(?:^|[;\s])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']|(?:^|[;\s])import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;
  for (const m of source.matchAll(pattern)) specs.push(m[1] ?? m[2] ?? m[3]);
  return specs;
}

/** A specifier resolved to a repository path, or null for packages (npm, node:). */
function resolve(from: string, spec: string): string | null {
  if (spec.startsWith("@/")) return spec.slice(2);
  if (!spec.startsWith(".")) return null;
  return new URL(spec, new URL(from, "file:///r/")).pathname.slice("/r/".length);
}

async function graph() {
  const edges = new Map<string, { target: string; spec: string }[]>();
  for (const file of await productFiles()) {
    const source = await Deno.readTextFile(new URL(file, root));
    edges.set(
      file,
      importsOf(source).map((spec) => ({ target: resolve(file, spec) ?? spec, spec })),
    );
  }
  return edges;
}

Deno.test("architecture: every import goes to the same layer or a lower one", async () => {
  const upward: string[] = [];
  for (const [file, imports] of await graph()) {
    const from = layerOf(file);
    for (const { target, spec } of imports) {
      if (!target.includes("/") && !wiring.includes(target)) continue; // a package
      if (spec.startsWith("npm:") || !(spec.startsWith(".") || spec.startsWith("@/"))) continue;
      const to = layerOf(target);
      if (to.rank > from.rank) upward.push(`${file} (${from.name}) imports ${target} (${to.name})`);
    }
  }
  assert.deepEqual(upward, []);
});

Deno.test("architecture: below the web layer nothing imports Hono", async () => {
  const found: string[] = [];
  for (const [file, imports] of await graph()) {
    if (layerOf(file).rank >= 3) continue;
    for (const { spec } of imports) {
      if (/^(hono|@hono\/)/.test(spec)) found.push(`${file} imports ${spec}`);
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("architecture: islands import only browser-safe code (islands, shared/, preact)", async () => {
  const found: string[] = [];
  for (const [file, imports] of await graph()) {
    if (!file.startsWith("web/dashboard/islands/")) continue;
    for (const { target, spec } of imports) {
      const ok = /^(preact|@xterm\/)/.test(spec) || target.startsWith("shared/") ||
        target.startsWith("web/dashboard/islands/");
      if (!ok) found.push(`${file} imports ${spec}`);
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("architecture: no import cycle", async () => {
  const edges = await graph();
  const cycles = stronglyConnected(
    new Map([...edges].map(([f, imports]) => [f, imports.map((i) => i.target)])),
  ).filter((c) => c.length > 1);
  assert.deepEqual(cycles, []);
});

Deno.test("architecture: the import scanner sees every import form (the checks above can fail)", () => {
  const specs = importsOf(
    [
      'import { a } from "./a.ts";',
      'import type { B } from "@/core/b.ts";',
      'export { c } from "../c.ts";',
      'import "./side-effect.ts";',
      'const d = await import("./d.ts");',
      "import {\n  e,\n  f,\n} from './e.ts';",
    ].join("\n"),
  );
  assert.deepEqual(specs, [
    "./a.ts",
    "@/core/b.ts",
    "../c.ts",
    "./side-effect.ts",
    "./d.ts",
    "./e.ts",
  ]);
  const cyclic = stronglyConnected(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]], ["d", []]]));
  assert(cyclic.some((c) => c.length === 3), "a three-module cycle is found");
});

/** Tarjan's strongly connected components over module → imported modules. */
function stronglyConnected(edges: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      out.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return out;
}

// Every SQL statement on the projects table lives in projects/queries.ts, so a reader finds
// every query on the table in one file. Statements only: "from" in an import is lower case.
const projectsSql = /\b(UPDATE|INSERT INTO|DELETE FROM|FROM|JOIN)\s+projects\b/g;
const projectsSqlHome = "projects/queries.ts";

Deno.test("architecture: SQL on the projects table is only in projects/queries.ts", async () => {
  const found: string[] = [];
  for (const file of await productFiles()) {
    if (file === projectsSqlHome) continue;
    const source = await Deno.readTextFile(new URL(file, root));
    for (const m of source.matchAll(projectsSql)) {
      const line = source.slice(0, m.index).split("\n").length;
      found.push(`${file}:${line}: ${m[0].replace(/\s+/g, " ")}`);
    }
  }
  assert.deepEqual(found, []);
  // The pattern itself can fail: statements over several lines, aliases; not imports.
  const hits = (text: string) => [...text.matchAll(projectsSql)].length;
  assert.equal(hits("UPDATE projects p SET x = 1"), 1);
  assert.equal(hits("SELECT *\n    FROM\n    projects WHERE"), 1);
  assert.equal(hits('import { a } from "@/projects/queries.ts";'), 0);
});
