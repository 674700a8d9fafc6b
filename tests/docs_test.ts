// The docs say what the code does (issue 23): every setting they name exists, the defaults they
// quote are the code's, and the terminal's close codes are the proxy's. The next drift fails CI.
import assert from "node:assert/strict";
import { configVariables, loadConfig } from "@/core/config.ts";
import { Close } from "@/terminal/protocol.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

async function docs(): Promise<[string, string][]> {
  const files = ["README.md", ".env.example"];
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (entry.name.endsWith(".md")) files.push(`docs/${entry.name}`);
  }
  return await Promise.all(files.map(async (f) => [f, await read(f)] as [string, string]));
}

/** Every file of code, scripts and deployment, to find a name the docs use. */
async function codeText(): Promise<string> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      const path = `${dir}${e.name}`;
      if (e.isDirectory && !["node_modules", ".tools", "data", ".git"].includes(e.name)) {
        await walk(`${path}/`);
      } else if (
        e.isFile && /\.(ts|tsx|sh|yml|yaml|sql|conf)$|Dockerfile$|^pomodex$/.test(e.name)
      ) {
        out.push(await read(path));
      }
    }
  };
  for (
    const dir of [
      ...["core/", "shared/", "infra/", "auth/", "projects/", "terminal/", "jobs/", "web/"],
      ...["scripts/", "tests/", "bench/", "reliability/", "sandbox/"],
    ]
  ) {
    await walk(dir);
  }
  for (
    const f of [
      ...["main.ts", "terminal.ts", "app.ts", "services.ts"],
      ...["docker-compose.yml", "pomodex", "Dockerfile"],
    ]
  ) {
    out.push(await read(f).catch(() => ""));
  }
  return out.join("\n");
}

Deno.test("every setting the docs name exists in the code", async () => {
  const code = await codeText();
  const known = new Set(configVariables);
  const missing: string[] = [];
  for (const [file, text] of await docs()) {
    for (const [, name] of text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`/g)) {
      if (name.startsWith("CAP_")) continue; // Linux capabilities, not settings
      if (!known.has(name) && !code.includes(name)) missing.push(`${file}: ${name}`);
    }
  }
  assert.deepEqual(missing, [], "named in the docs, found nowhere in the code");
});

Deno.test("the defaults the docs quote are the code's", async () => {
  const defaults = Object.fromEntries(
    [...(await read(".env.example")).matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((
      m,
    ) => [m[1], m[2]]),
  );
  // .env.example itself is checked against the code in config_test.ts.
  const wrong: string[] = [];
  for (const [file, text] of await docs()) {
    if (file === ".env.example") continue;
    // "`NAME` (30)", "`NAME` (30 s)", "`NAME` (default 30)", "`NAME` (64 KiB)", "(15 min)"
    const quoted = /`([A-Z][A-Z0-9_]+)` \((?:default )?(\d+)(?: ?(KiB|MiB|min|s|h|GB)\b)?/g;
    for (const [, name, number, unit] of text.matchAll(quoted)) {
      if (!(name in defaults) || defaults[name] === "") continue;
      const value = Number(number) * scale(name, unit);
      if (Number(defaults[name]) !== value) {
        wrong.push(
          `${file}: ${name} (${number}${unit ? ` ${unit}` : ""}), the code says ${defaults[name]}`,
        );
      }
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(loadConfig({}).isolation.workspaceDiskGb > 0);
});

Deno.test("the close codes docs/TERMINAL.md lists are the proxy's, all of them", async () => {
  const text = await read("docs/TERMINAL.md");
  const section = text.slice(
    text.indexOf("## Close codes"),
    text.indexOf("\n## ", text.indexOf("## Close codes") + 3),
  );
  const documented = [...section.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1])).sort();
  assert.deepEqual(documented, Object.values(Close).sort());
});

/** A quoted value in the variable's own unit (its name says which: _BYTES, _SECONDS...). */
function scale(name: string, unit: string | undefined): number {
  const per: Record<string, Record<string, number>> = {
    BYTES: { KiB: 1024, MiB: 1024 ** 2 },
    SECONDS: { s: 1, min: 60, h: 3600 },
    MINUTES: { min: 1, h: 60 },
  };
  const kind = Object.keys(per).find((k) => name.endsWith(`_${k}`));
  return unit && kind ? per[kind][unit] ?? NaN : 1;
}
