/**
 * Bad input, at scale, against the real server process:
 *   - every operation of /openapi.json gets random and boundary values for every field,
 *     path and query parameter (huge strings, wrong types, unicode with NUL and RTL,
 *     SQL/shell/HTML injection, prototype-pollution keys, deep nesting, malformed JSON, odd
 *     content types), with no, a user's, an admin's and a garbage token: never a 5xx, every
 *     error {detail, code} with nothing internal in it, and afterwards nothing in the
 *     database that a failed request stored or that breaks its own rules;
 *   - the terminal proxy's WebSocket protocol: bad and absent tickets, garbage and huge
 *     frames, invalid resize messages, raw bytes that are not WebSocket at all, sends on
 *     closed sockets: only documented close codes, and the proxy keeps serving.
 * The seed is printed; RELIABILITY_FUZZ_SEED=<n> replays a run.
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "@/tests/helpers/db.ts";
import { requireEngine, SKIP_ENGINE_TESTS } from "@/tests/helpers/engine.ts";
import { TermClient } from "@/tests/helpers/terminal.ts";
import { call, clientIp, errorShapeProblem, rng } from "./helpers/api.ts";
import { signUp } from "@/tests/helpers/users.ts";
import { removeEverything } from "./helpers/engine.ts";
import { scratchDir } from "./helpers/workspace.ts";
import { sleep, startServer, waitUntil } from "@/tests/helpers/server.ts";
import { messageOf } from "@/core/errors.ts";

const SEED = Number(Deno.env.get("RELIABILITY_FUZZ_SEED") ?? 4_242_017);
const CASES_PER_OPERATION = Number(Deno.env.get("RELIABILITY_FUZZ_CASES") ?? 80);
const CONCURRENCY = 12;
const BODY_LIMIT = 64 * 1024;
const MAX_FRAME = 64 * 1024;

type Rng = ReturnType<typeof rng>;
// deno-lint-ignore no-explicit-any
type Schema = any;

// --- the catalog of bad values

const injections = [
  "' OR '1'='1",
  "'; DROP TABLE users; --",
  "1; SELECT pg_sleep(5)--",
  '"; $(id); `id`; | cat /etc/passwd',
  "<script>alert(1)</script>",
  "<img src=x onerror=alert(1)>",
  "{{7*7}}${7*7}<%= 7*7 %>",
  "${jndi:ldap://127.0.0.1/x}",
  "../../../../etc/passwd",
  "%00%0d%0aX-Injected: 1",
  "%s%s%s%n%x",
  "\\",
  "\\u0000",
  "null",
  "undefined",
  "NaN",
  "[object Object]",
];
const unicode = [
  "\u0000",
  "a\u0000b",
  "\u202eevil\u202c",
  "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",
  "\u{1F469}\u200d\u{1F469}\u200d\u{1F467}\u200d\u{1F466}",
  "\u{1D573}\u{1D58A}",
  "\ud800",
  "\udfff\ud800",
  "\ufeff",
  "\u2028\u2029",
  "e\u0301\u0301\u0301",
  "\u0007\u001b[31mred\u001b[0m",
  "   ",
  "\t\n\r",
  "Ａ",
];
const numbers = [
  0,
  -1,
  1,
  4,
  5,
  480,
  481,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 2,
  -(2 ** 63),
  1e308,
  -1e308,
  0.5,
  1e-300,
];
const deep = (n: number) => {
  let v: unknown = "x";
  for (let i = 0; i < n; i++) v = i % 2 ? { a: v } : [v];
  return v;
};
const wrongTypes = (): unknown[] => [
  null,
  true,
  false,
  [],
  {},
  ["a", 1, null],
  { a: { b: { c: 1 } } },
  "1",
  1,
  -1,
  deep(50),
];

function evilString(r: Rng, schema: Schema = {}): string {
  const max = typeof schema.maxLength === "number" ? schema.maxLength : 64;
  const min = typeof schema.minLength === "number" ? schema.minLength : 1;
  const choice = r.int(0, 9);
  if (choice <= 2) return r.pick(injections);
  if (choice <= 4) return r.pick(unicode);
  if (choice === 5) return "a".repeat(r.pick([max, max + 1, Math.max(0, min - 1), 0]));
  if (choice === 6) return "\u{1F600}".repeat(max); // 2 UTF-16 units each
  if (choice === 7) return "x".repeat(r.pick([1000, 10_000, 60_000]));
  if (choice === 8) return r.pick(injections) + r.pick(unicode);
  return ` ${r.pick(["a", "z", "Z"])}${r.pick(unicode)} `;
}

function evilEmail(r: Rng): string {
  return r.pick([
    "plain",
    "@example.com",
    "a@",
    "a@b",
    "a b@example.com",
    "a@example.com\u0000",
    "\u0000@example.com",
    "a@exa\u202emple.com",
    `${"a".repeat(250)}@example.com`,
    `${"a".repeat(64)}@${"b".repeat(63)}.com`,
    "ünïcode@exämple.com",
    "a+tag@example.com",
    '"quoted"@example.com',
    "a@[127.0.0.1]",
    "'; DROP TABLE users;--@example.com",
    "<script>@example.com",
    " spaced@example.com ",
    "UPPER@EXAMPLE.COM",
    "a@example.com\r\nBcc: x@example.com",
  ]);
}

/** A JSON object body as form fields (non-string values as their JSON), or null. */
function asForm(body: string): string | null {
  try {
    const value = JSON.parse(body);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
    return new URLSearchParams(
      Object.entries(value).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
    ).toString();
  } catch {
    return null;
  }
}

const refreshCookieValues = [
  "",
  "x",
  "a.b.c",
  "%00",
  "%FF%FE",
  "A".repeat(4000),
  encodeURIComponent("' OR 1=1 --"),
  "0".repeat(43),
];

// --- OpenAPI: operations and their schemas

interface Operation {
  method: string;
  path: string;
  params: { name: string; in: string; schema: Schema }[];
  body: Schema | null;
  forms: boolean;
  secured: boolean;
}

function operationsOf(doc: Schema): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Schema>)) {
    for (const [method, op] of Object.entries(item as Record<string, Schema>)) {
      const content = op.requestBody?.content ?? {};
      ops.push({
        method: method.toUpperCase(),
        path,
        params: op.parameters ?? [],
        body: content["application/json"]?.schema ?? null,
        forms: "application/x-www-form-urlencoded" in content,
        secured: Array.isArray(op.security) && op.security.length > 0,
      });
    }
  }
  return ops;
}

function resolve(doc: Schema, s: Schema): Schema {
  let out = s;
  while (out?.$ref) out = doc.components.schemas[out.$ref.split("/").at(-1)];
  return out ?? {};
}

function typesOf(s: Schema): string[] {
  if (Array.isArray(s.type)) return s.type;
  if (s.type) return [s.type];
  if (s.anyOf) return s.anyOf.flatMap(typesOf);
  if (s.enum) return ["string"];
  return ["string"];
}

/** A value the schema accepts, as a client that read the docs would send. */
function sample(doc: Schema, schema: Schema, r: Rng, field = ""): unknown {
  const s = resolve(doc, schema);
  if (s.enum) return s.enum[0];
  const type = typesOf(s).find((t) => t !== "null") ?? "string";
  switch (type) {
    case "object": {
      // Only what is required (when the schema says): an optional field filled with a
      // made-up value (a user id, a public key) would make every request a 404 or 422.
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
        if (!s.required || s.required.includes(k)) out[k] = sample(doc, v, r, k);
      }
      return out;
    }
    case "array":
      return s.items ? [sample(doc, s.items, r)] : [];
    case "integer":
    case "number":
      return s.minimum ?? (field.includes("idle") ? 30 : 1);
    case "boolean":
      return true;
    default:
      if (s.format === "email") return `fuzz-${r.int(0, 1e9)}@example.com`;
      if (s.format === "uuid") return crypto.randomUUID();
      if (field === "password") return "correct horse battery";
      if (field === "grant_type") return "client_credentials";
      if (field === "lifetime") return "30d";
      return `fuzz-${r.int(0, 1e6)}`;
  }
}

/** A value of the wrong kind, or at or past a bound of the right kind. */
function evil(doc: Schema, schema: Schema, r: Rng, field = ""): unknown {
  const s = resolve(doc, schema);
  const types = typesOf(s);
  if (r.chance(0.25)) return r.pick(wrongTypes());
  if (s.format === "email" || field === "email") return evilEmail(r);
  if (types.includes("integer") || types.includes("number")) {
    return r.chance(0.8) ? r.pick(numbers) : r.pick(["5", "1e3", "0x10", "", "Infinity"]);
  }
  if (types.includes("array")) {
    return r.pick([
      [],
      [evilString(r)],
      Array(1000).fill("projects:read"),
      [null],
      [[[]]],
      [sample(doc, s.items ?? {}, r), evilString(r)],
    ]);
  }
  if (types.includes("object")) return r.pick([[], "x", deep(200)]);
  if (s.enum) return r.chance(0.5) ? `${s.enum[0]}${r.pick(unicode)}` : evilString(r);
  return evilString(r, s);
}

interface Case {
  op: Operation;
  path: string;
  body?: string;
  contentType?: string;
  auth: "none" | "user" | "admin" | "garbage";
  ip?: string;
  label: string;
}

/** Raw JSON texts no serializer would write. */
function rawBodies(baseline: Record<string, unknown>, r: Rng): [string, string][] {
  const json = JSON.stringify(baseline);
  const inner = json.slice(1, -1);
  return [
    ["malformed: truncated", json.slice(0, Math.max(1, json.length - 3))],
    ["malformed: trailing brace", `${json}}`],
    ["malformed: single quotes", json.replaceAll('"', "'")],
    ["malformed: NUL", "\u0000"],
    ["malformed: BOM", `\ufeff${json}`],
    ["empty body", ""],
    ["array body", `[${json}]`],
    ["string body", JSON.stringify(evilString(r))],
    ["number body", "1e999"],
    ["null body", "null"],
    ["__proto__ key", `{"__proto__":{"role":"admin","isAdmin":true},${inner}}`],
    ["constructor.prototype", `{"constructor":{"prototype":{"role":"admin"}},${inner}}`],
    ["duplicate keys", `{${inner},${inner}}`],
    ["deep nesting", "[".repeat(10_000) + "]".repeat(10_000)],
    ["huge body (over the limit)", `{"x":"${"a".repeat(BODY_LIMIT + 10)}"}`],
    ["body at the limit", `{"x":"${"a".repeat(BODY_LIMIT - 8)}"}`],
    ["lone surrogate escapes", json.replace(/"fuzz-/, '"\\ud800\\udc00\\ud800fuzz-')],
  ];
}

/** Percent-encodes anything, lone surrogates too (as U+FFFD; raw bad UTF-8 comes separately). */
const pct = (s: string) => encodeURIComponent(s.toWellFormed());

const pathValues = (r: Rng, realId: string | null) => {
  const values = [
    crypto.randomUUID(),
    crypto.randomUUID().toUpperCase(),
    `${crypto.randomUUID()}x`,
    "0",
    "-1",
    "null",
    "%00",
    "..%2F..%2Fetc%2Fpasswd",
    "a".repeat(2000),
    pct(evilString(r)),
    pct(r.pick(injections)),
    pct(r.pick(unicode)),
    "%ED%A0%80", // a UTF-16 surrogate, as bytes: not UTF-8
    "%FF%FE%FD",
  ];
  if (realId) values.push(realId, realId, realId);
  return r.pick(values);
};

/** Verbs with a real effect on an existing resource get only ids that name nothing. */
function destructive(op: Operation): boolean {
  return op.method === "DELETE" ||
    /\/(stop|snapshot|start|restore|disable|enable)$/.test(op.path);
}

function buildCases(doc: Schema, ops: Operation[], r: Rng, realProject: string): Case[] {
  const cases: Case[] = [];
  for (const op of ops) {
    if (["/health", "/ready", "/metrics", "/openapi.json"].includes(op.path)) continue;
    const internal = op.path.startsWith("/internal");
    const bodySchema = op.body ? resolve(doc, op.body) : null;
    const baseline = bodySchema ? sample(doc, bodySchema, r) as Record<string, unknown> : null;
    const fields = Object.entries((bodySchema?.properties ?? {}) as Record<string, Schema>);
    const raw = baseline ? rawBodies(baseline, r) : [];
    const auths: Case["auth"][] = op.path === "/auth/logout-all"
      ? ["none", "garbage"] // a real token would end the fuzzer's own sessions
      : ["none", "user", "admin", "garbage"];
    for (let i = 0; i < CASES_PER_OPERATION; i++) {
      let path = op.path;
      const query = new URLSearchParams();
      for (const p of op.params) {
        if (p.in === "path") {
          const real = destructive(op) || !op.path.startsWith("/projects/") ? null : realProject;
          path = path.replace(`{${p.name}}`, pathValues(r, real));
        } else if (p.in === "query" && r.chance(0.7)) {
          const v = r.chance(0.3) ? sample(doc, p.schema, r) : evil(doc, p.schema, r, p.name);
          // Capped: past some 16 KB the client refuses the URL before the server sees it.
          query.set(p.name, (typeof v === "string" ? v : JSON.stringify(v)).slice(0, 16_000));
        }
      }
      if (!op.params.length && r.chance(0.1)) query.set(evilString(r).slice(0, 50), "1");
      const qs = query.toString();
      const c: Case = {
        op,
        path: qs ? `${path}?${qs}` : path,
        auth: r.pick(auths),
        ip: internal && r.chance(0.8) ? undefined : clientIp(r.int(1, 2 ** 24 - 2)),
        label: "params",
      };
      if (baseline) {
        const roll = r.next();
        if (roll < 0.15 && raw.length) {
          const [label, body] = r.pick(raw);
          Object.assign(c, { body, label });
        } else if (roll < 0.2 && fields.length) {
          const copy = { ...baseline };
          delete copy[r.pick(fields)[0]];
          Object.assign(c, { body: JSON.stringify(copy), label: "missing field" });
        } else if (roll < 0.25) {
          Object.assign(c, {
            body: JSON.stringify(baseline),
            contentType: r.pick([
              "text/plain",
              "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=x",
              "application/json; charset=utf-16",
              "",
            ]),
            label: "content type",
          });
        } else {
          // One to all fields bad at once.
          const copy: Record<string, unknown> = { ...baseline };
          const n = r.int(1, Math.max(1, fields.length));
          const bad: string[] = [];
          for (let k = 0; k < n && fields.length; k++) {
            const [name, schema] = r.pick(fields);
            copy[name] = evil(doc, schema, r, name);
            bad.push(name);
          }
          if (r.chance(0.1)) copy[evilString(r).slice(0, 40)] = evil(doc, {}, r);
          Object.assign(c, { body: JSON.stringify(copy), label: `bad ${bad.join(",")}` });
        }
      } else if (["POST", "PATCH", "PUT", "DELETE"].includes(op.method) && r.chance(0.2)) {
        Object.assign(c, { body: JSON.stringify(evil(doc, {}, r)), label: "unexpected body" });
      }
      cases.push(c);
    }
  }
  return cases;
}

/** Every field and query parameter, each with every special value, as an authorized caller. */
function sweepCases(doc: Schema, ops: Operation[], r: Rng, realProject: string): Case[] {
  const specials: unknown[] = [
    ...injections,
    ...unicode,
    "",
    "a".repeat(65),
    "a".repeat(257),
    "x".repeat(20_000),
    ...wrongTypes(),
    ...numbers,
  ];
  const cases: Case[] = [];
  for (const op of ops) {
    if (["/health", "/ready", "/metrics", "/openapi.json", "/auth/logout-all"].includes(op.path)) {
      continue;
    }
    const auth: Case["auth"] = op.path.startsWith("/admin") ? "admin" : "user";
    const internal = op.path.startsWith("/internal");
    const path = op.params.filter((p) => p.in === "path").reduce(
      (acc, p) =>
        acc.replace(
          `{${p.name}}`,
          destructive(op) || !op.path.startsWith("/projects/") ? crypto.randomUUID() : realProject,
        ),
      op.path,
    );
    const bodySchema = op.body ? resolve(doc, op.body) : null;
    const baseline = bodySchema ? sample(doc, bodySchema, r) as Record<string, unknown> : null;
    for (
      const [field] of Object.entries((bodySchema?.properties ?? {}) as Record<string, Schema>)
    ) {
      for (const value of specials) {
        cases.push({
          op,
          path,
          body: JSON.stringify({ ...baseline, [field]: value }),
          auth,
          ip: internal ? undefined : clientIp(r.int(1, 2 ** 24 - 2)),
          label: `sweep ${field}`,
        });
      }
    }
    for (const p of op.params.filter((p) => p.in === "query")) {
      for (const value of specials) {
        const v = typeof value === "string" ? value : JSON.stringify(value);
        cases.push({
          op,
          path: `${path}?${new URLSearchParams({ [p.name]: v.toWellFormed().slice(0, 16_000) })}`,
          auth,
          ip: internal ? undefined : clientIp(r.int(1, 2 ** 24 - 2)),
          label: `sweep ?${p.name}`,
        });
      }
    }
  }
  return cases;
}

interface Finding {
  case: string;
  status: number | string;
  text: string;
}

Deno.test({
  name: "fuzz: every JSON endpoint and the terminal WebSocket protocol",
  ignore: SKIP_ENGINE_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    console.log(`fuzz seed ${SEED} (replay: RELIABILITY_FUZZ_SEED=${SEED})`);
    const r = rng(SEED);
    // Torn down in reverse: the server (its installation and projects read while it still
    // runs), what they left in the engine and on the host, the engine client, the database,
    // the directory.
    await using data = await scratchDir("pomodex-rel-fuzz-");
    await using db = await createTestDatabase();
    using engine = await requireEngine();
    const dataDir = data.path;
    const server = await startServer({
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      TRUSTED_PROXIES: "127.0.0.1",
      INITIAL_ADMIN_EMAIL: "fuzz-admin@example.com",
      INITIAL_ADMIN_PASSWORD: "correct horse battery staple",
      DEFAULT_PROJECT_QUOTA: "2",
      SANDBOX_MEMORY_MB: "256",
      TERMINAL_PROXY: "true",
      // Port 0: the proxy says where it listens (no port probed here and taken meanwhile).
      TERMINAL_PROXY_PORT: "0",
    }, { name: "fuzz" });
    await using cleanup = new AsyncDisposableStack();
    cleanup.defer(async () => {
      const installation = (await db.sql<{ id: string }[]>`SELECT id FROM installation`
        .catch(() => []))[0]?.id ?? null;
      const ids = (await db.sql<{ id: string }[]>`SELECT id FROM projects`.catch(() => []))
        .map((p) => p.id);
      await server.stop();
      await removeEverything(engine, installation, ids, {
        workspaceDir: `${dataDir}/workspaces`,
      });
    });
    const base = server.url;
    const proxyPort = await waitUntil(
      "the terminal proxy to say where it listens",
      () => Promise.race([server.terminalPort, sleep(100).then(() => 0)]),
      30_000,
      0,
    );
    const proxy = `http://127.0.0.1:${proxyPort}`;
    await waitUntil(
      "the terminal proxy",
      async () => {
        const res = await fetch(`${proxy}/health`);
        await res.body?.cancel();
        return res.ok;
      },
      30_000,
      100,
    );

    const user = await signUp(base, { ip: clientIp(1) });
    const adminLogin = await call(base, "POST", "/auth/login", {
      json: { email: "fuzz-admin@example.com", password: "correct horse battery staple" },
      ip: clientIp(2),
    });
    assert.equal(adminLogin.status, 200, adminLogin.text);
    const adminToken = adminLogin.body.access_token as string;
    // The WebSocket fuzz needs a running project; its owner is not fuzzed.
    const wsUser = await signUp(base, { ip: clientIp(3) });
    const wsProject = await call(base, "POST", "/projects", {
      token: wsUser.token,
      json: { name: "ws-fuzz" },
      timeoutMs: 120_000,
    });
    assert.equal(wsProject.status, 201, wsProject.text);
    const realProject = await call(base, "POST", "/projects", {
      token: user.token,
      json: { name: "fuzz-target" },
      timeoutMs: 120_000,
    });
    assert.equal(realProject.status, 201, realProject.text);
    const [{ users: usersBefore }] = await db.sql<{ users: number }[]>`
      SELECT count(*)::int AS users FROM users`;

    // --- HTTP
    const doc = (await call(base, "GET", "/openapi.json")).body;
    const ops = operationsOf(doc);
    const cases = [
      ...sweepCases(doc, ops, r, realProject.body.id),
      ...buildCases(doc, ops, r, realProject.body.id),
    ];
    const findings: Finding[] = [];
    const statuses = new Map<number, number>();
    const created = { users: 0, projects: 0, apiKeys: 0, clients: 0 };
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++];
        const headers: Record<string, string> = {};
        let payload = c.body;
        let contentType = c.contentType ?? "application/json";
        // Routes that take forms get half their JSON cases as form fields too.
        if (c.op.forms && payload !== undefined && contentType === "application/json") {
          const form = r.chance(0.5) ? asForm(payload) : null;
          if (form !== null) [payload, contentType] = [form, "application/x-www-form-urlencoded"];
        }
        if (payload !== undefined) headers["content-type"] = contentType;
        let sent = contentType === "application/json" ? "" : ` as ${contentType}`;
        if (c.op.path.startsWith("/auth/browser/")) {
          // Past the same-origin check, so that the body and the cookie are what is judged.
          headers["sec-fetch-site"] = "same-origin";
          const cookie = r.pick(refreshCookieValues);
          headers.cookie = `__Host-pomodex_refresh=${cookie}`;
          sent += ` cookie ${JSON.stringify(cookie.slice(0, 40))}`;
        }
        if (c.ip) headers["x-forwarded-for"] = c.ip;
        if (c.auth === "user") headers.authorization = `Bearer ${user.token}`;
        if (c.auth === "admin") headers.authorization = `Bearer ${adminToken}`;
        if (c.auth === "garbage") {
          headers.authorization = r.pick([
            "Bearer ",
            "Bearer x.y.z",
            `Bearer ${user.token}x`,
            `Bearer ${user.token.split(".").slice(0, 2).join(".")}.`,
            "Bearer pdx_0000000000000000000000000000000000",
            `Basic ${btoa("a:b")}`,
            `Bearer ${"A".repeat(9000)}`,
            "bearer\tx",
            `Bearer ${pct(r.pick(injections))}`,
          ]);
        }
        const what = `${c.op.method} ${c.path.slice(0, 160)} [${c.auth}; ${c.label}]${sent}`;
        try {
          const res = await fetch(base + c.path, {
            method: c.op.method,
            headers,
            body: payload,
            signal: AbortSignal.timeout(60_000),
          });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          let body: unknown = null;
          try {
            body = JSON.parse(text);
          } catch { /* judged below */ }
          if (res.status >= 500) {
            findings.push({
              case: `${what} body ${JSON.stringify(payload?.slice(0, 300))}`,
              status: res.status,
              text: text.slice(0, 300),
            });
          } else if (res.status >= 400) {
            const bad = errorShapeProblem({
              status: res.status,
              text,
              body,
              headers: res.headers,
              ms: 0,
            });
            if (bad) findings.push({ case: what, status: res.status, text: bad });
          } else if (res.status === 201) {
            if (c.op.path === "/auth/register") created.users++;
            if (c.op.path === "/projects") created.projects++;
            if (c.op.path === "/auth/api-keys") created.apiKeys++;
            if (c.op.path === "/admin/clients") created.clients++;
          }
        } catch (err) {
          findings.push({ case: what, status: "network", text: messageOf(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const httpSeconds = (performance.now() - started) / 1000;
    const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`);
    console.log(
      `HTTP: ${cases.length} cases over ${ops.length} operations in ${
        httpSeconds.toFixed(1)
      } s; statuses {${byStatus.join(", ")}}; findings ${findings.length}`,
    );
    for (const f of findings.slice(0, 15)) console.log(`  ${f.status} ${f.case}: ${f.text}`);

    // --- nothing stored that should not be
    const users = await db.sql<{ email: string }[]>`SELECT email FROM users`;
    // deno-lint-ignore no-control-regex
    const control = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
    const badEmails = users.filter((u) =>
      !/^[^\s@]+@[^\s@]+$/.test(u.email) || u.email.length > 254 || control.test(u.email)
    );
    const projects = await db.sql<{ name: string; status: string; idleTimeoutMinutes: number }[]>`
      SELECT name, status, idle_timeout_minutes FROM projects`;
    const badProjects = projects.filter((p) =>
      p.name !== p.name.trim() || p.name.length < 1 || [...p.name].length > 64 ||
      control.test(p.name) || !["running", "stopped", "error"].includes(p.status) ||
      (p.idleTimeoutMinutes !== null &&
        !(p.idleTimeoutMinutes === 0 ||
          (p.idleTimeoutMinutes >= 5 && p.idleTimeoutMinutes <= 480)))
    );
    const keys = await db.sql<{ name: string }[]>`
      SELECT name FROM api_keys UNION ALL SELECT name FROM api_clients`;
    const badKeys = keys.filter((k) => k.name !== k.name.trim() || !k.name || control.test(k.name));
    const [{ n: projectRows }] = await db.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM projects`;
    const [{ n: keyRows }] = await db.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM api_keys`;
    const [{ n: clientRows }] = await db.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM api_clients`;
    console.log(
      `stored: users +${
        users.length - usersBefore
      } (201s: ${created.users}), projects ${projectRows} ` +
        `(2 set-up + 201s: ${created.projects}), api keys ${keyRows} (201s: ${created.apiKeys}), ` +
        `clients ${clientRows} (201s: ${created.clients}); rule breakers: emails ${badEmails.length}, ` +
        `projects ${badProjects.length}, key/client names ${badKeys.length}`,
    );
    for (const x of [...badEmails, ...badProjects, ...badKeys].slice(0, 10)) {
      console.log(`  stored: ${JSON.stringify(x)}`);
    }

    // --- WebSocket
    const ws = await fuzzTerminal({ base, proxy, user: wsUser, projectId: wsProject.body.id, r });
    console.log(
      `WebSocket: ${ws.connections} connections, ${ws.frames} frames, ${ws.raw} raw-socket ` +
        `cases; close codes {${[...ws.codes].map(([c, n]) => `${c}: ${n}`).join(", ")}}; ` +
        `findings ${ws.findings.length}`,
    );
    for (const f of ws.findings.slice(0, 10)) console.log(`  ${f}`);

    // --- verdict
    assert.deepEqual(findings.slice(0, 10), [], `${findings.length} HTTP findings`);
    assert.deepEqual(
      [...badEmails, ...badProjects, ...badKeys],
      [],
      "stored rows keep their rules",
    );
    assert.equal(users.length - usersBefore, created.users, "a user only for each 201");
    assert.equal(projectRows, 2 + created.projects, "a project only for each 201");
    assert.equal(keyRows, created.apiKeys, "an API key only for each 201");
    assert.equal(clientRows, created.clients, "a client only for each 201");
    assert.deepEqual(ws.findings, [], "terminal proxy findings");
    const health = await call(base, "GET", "/health");
    assert.equal(health.status, 200, "the server still serves");
    const crashes = server.problems.filter((l) =>
      /unhandled|exited|restarting|panic|uncaught/i.test(`${l.msg} ${l.error ?? ""}`)
    );
    assert.deepEqual(crashes.slice(0, 5), [], "no crash, no unhandled error");
  },
});

/**
 * Close codes the protocol documents (terminal/protocol.ts), 1005 (closed without a
 * code), and 0: Deno's WebSocket reports a handshake the server answered with a plain HTTP
 * error (no WebSocket at all) as code 0.
 */
const DOCUMENTED = new Set([
  0,
  1000,
  1001,
  1005,
  1009,
  1011,
  1013,
  4400,
  4401,
  4404,
  4408,
  4409,
  4429,
]);
const TIMED_OUT = -1;

async function fuzzTerminal(opts: {
  base: string;
  proxy: string;
  user: { token: string };
  projectId: string;
  r: Rng;
}) {
  const { base, proxy, user, projectId, r } = opts;
  const wsBase = proxy.replace(/^http/, "ws");
  const findings: string[] = [];
  const codes = new Map<number, number>();
  let connections = 0, frames = 0, raw = 0;
  const note = (code: number) => codes.set(code, (codes.get(code) ?? 0) + 1);
  const ticket = async () => {
    const a = await call(base, "POST", `/projects/${projectId}/terminal-ticket`, {
      token: user.token,
    });
    assert.equal(a.status, 200, a.text);
    return a.body.ticket as string;
  };
  /** Connects, lets `act` play, and returns how the proxy closed (TIMED_OUT if it never did). */
  const session = async (
    url: string,
    act?: (c: TermClient) => Promise<void>,
    timeoutMs = 8000,
  ): Promise<number> => {
    connections++;
    // At the end: the timer cleared, then the socket closed without waiting for the close to
    // complete (TermClient's own asyncDispose would wait).
    using cleanup = new DisposableStack();
    const c = new TermClient(url);
    cleanup.defer(() => c.close());
    const timer = setTimeout(() => c.close(), timeoutMs);
    cleanup.defer(() => clearTimeout(timer));
    if (act && await c.opened) await act(c);
    const closed = await Promise.race([c.closed, sleep(timeoutMs).then(() => null)]);
    const code = closed?.code ?? TIMED_OUT;
    note(code);
    return code;
  };
  const expectCode = (what: string, code: number, allowed: number[]) => {
    if (!allowed.includes(code)) {
      findings.push(`${what}: close ${code}, expected ${allowed.join("/")}`);
    } else if (!DOCUMENTED.has(code) && code < 4000) {
      findings.push(`${what}: undocumented close ${code}`);
    }
  };

  // Refused before any shell: no, bad, huge or injected tickets; bad paths and reconnect ids.
  const badTickets = [
    "",
    "x",
    "a".repeat(8000),
    pct(r.pick(injections)),
    pct("\u0000\u202e"),
    `${crypto.randomUUID()}`,
    user.token.slice(0, -2),
  ];
  for (const t of badTickets) {
    const code = await session(`${wsBase}/terminal/${projectId}${t ? `?ticket=${t}` : ""}`);
    expectCode(`ticket ${t.slice(0, 20)}`, code, [4401]);
  }
  for (const t of ["", "x.y.z", user.token + "x"]) {
    const code = await session(`${wsBase}/terminal/${projectId}?token=${t}`);
    expectCode(`token ${t.slice(0, 20)}`, code, [4401]);
  }
  for (const id of [crypto.randomUUID(), "not-a-uuid", encodeURIComponent("../../x"), "%00"]) {
    const code = await session(`${wsBase}/terminal/${id}?ticket=${await ticket()}`);
    expectCode(`project ${id}`, code, [4401, 4404]);
  }
  for (
    const rc of ["x", "a".repeat(65), encodeURIComponent("<script>"), "%00%00%00%00%00%00%00%00"]
  ) {
    const code = await session(
      `${wsBase}/terminal/${projectId}?ticket=${await ticket()}&reconnect=${rc}`,
    );
    expectCode(`reconnect ${rc.slice(0, 10)}`, code, [4400]);
  }
  for (const path of ["/", "/terminal", "/terminal/a/b/c", `/terminal/${projectId}/..`]) {
    const code = await session(`${wsBase}${path}?ticket=x`);
    expectCode(`path ${path}`, code, [0]);
  }
  // Plain HTTP to the proxy: documented JSON errors.
  for (
    const [method, path, headers] of [
      ["GET", `/terminal/${projectId}`, {}],
      ["POST", `/terminal/${projectId}`, {}],
      ["GET", "/nope", {}],
      ["GET", `/terminal/${projectId}`, { upgrade: "h2c", connection: "upgrade" }],
    ] as [string, string, Record<string, string>][]
  ) {
    const res = await fetch(proxy + path, { method, headers });
    const text = await res.text();
    const bad = errorShapeProblem({
      status: res.status,
      text,
      body: safeJson(text),
      headers: res.headers,
      ms: 0,
    });
    if (res.status >= 500 || bad) {
      findings.push(`HTTP ${method} ${path}: ${res.status} ${bad ?? text}`);
    }
  }

  // A real shell, fed garbage text frames: it must ignore them and keep working.
  const garbage = () =>
    r.pick([
      "",
      "{",
      "null",
      "[]",
      '{"type":"resize"}',
      '{"type":"resize","cols":-1,"rows":-1}',
      '{"type":"resize","cols":1e308,"rows":"NaN"}',
      '{"type":"resize","cols":{"a":1},"rows":[1]}',
      '{"type":"resize","cols":0,"rows":0}',
      '{"type":"resize","cols":99999999,"rows":99999999}',
      '{"type":"__proto__","__proto__":{"polluted":1}}',
      '{"type":"exec","cmd":"id"}',
      JSON.stringify({ type: r.pick(injections), cols: r.pick(numbers), rows: r.pick(numbers) }),
      evilString(r).slice(0, 2000),
      JSON.stringify({ type: "resize", cols: 80, rows: 24, pad: "x".repeat(30_000) }),
    ]);
  let code = await session(
    `${wsBase}/terminal/${projectId}?ticket=${await ticket()}`,
    async (c) => {
      for (let i = 0; i < 300; i++) {
        c.ws.send(garbage());
        frames++;
      }
      const out = await c.run("echo fuzz-$((6*7))", 15_000).catch((err) =>
        `failed: ${err.message}`
      );
      if (out.trim() !== "fuzz-42") {
        findings.push(
          `shell after garbage text frames: ${out.slice(0, 200)}`,
        );
      }
      c.close(1000);
    },
  );
  expectCode("garbage text frames", code, [1000, 1005]);

  // Printable garbage (quotes, backslashes, $(...), no control keys), then Ctrl-C, Ctrl-U and
  // a command: the proxy passes them and the shell still answers.
  code = await session(`${wsBase}/terminal/${projectId}?ticket=${await ticket()}`, async (c) => {
    // Kept to a few KB: bash redraws its whole line for each key, so 50 KB of typing
    // would keep it busy for longer than the test waits.
    for (let i = 0; i < 60; i++) {
      const bytes = crypto.getRandomValues(new Uint8Array(r.int(1, 64)))
        .map((b) => 32 + (b % 95)); // printable ASCII: no key that ends or confuses the line
      c.send(bytes);
      frames++;
    }
    // Let the shell take it all in (its echo goes quiet), then clear the line.
    let seen = -1;
    for (let i = 0; i < 40 && seen !== c.bytesReceived; i++) {
      seen = c.bytesReceived;
      await sleep(250);
    }
    // A shell still redrawing a long line may miss the first Ctrl-C: a few tries are fair, a
    // shell that never answers again is the finding.
    let out = "";
    for (let attempt = 1; attempt <= 3 && out.trim() !== "bytes-ok"; attempt++) {
      c.send("\x03");
      await sleep(200 * attempt);
      c.send("\x15");
      out = await c.run("echo bytes-ok", 10_000).catch((err) => `failed: ${err.message}`);
      const answered = out.trim() === "bytes-ok" ? "answered" : "no answer";
      if (attempt > 1) console.log(`  shell after random bytes, try ${attempt}: ${answered}`);
    }
    if (out.trim() !== "bytes-ok") findings.push(`shell after random bytes: ${out.slice(0, 200)}`);
    c.close(1000);
  }, 50_000); // the quiet wait and three tries, each bounded
  expectCode("random printable binary frames", code, [1000, 1005]);
  // Any bytes at all, control keys included: the shell may well exit (1000); the proxy must
  // only ever close with a documented code.
  code = await session(`${wsBase}/terminal/${projectId}?ticket=${await ticket()}`, async (c) => {
    for (let i = 0; i < 200 && c.isOpen; i++) {
      c.send(crypto.getRandomValues(new Uint8Array(r.int(1, 512))));
      frames++;
    }
    await sleep(500);
    c.close(1000);
  });
  expectCode("random binary frames", code, [1000, 1005]);

  // Frames over the limit, text and binary: 1009.
  for (const kind of ["text", "binary"]) {
    code = await session(`${wsBase}/terminal/${projectId}?ticket=${await ticket()}`, async (c) => {
      frames++;
      if (kind === "text") c.ws.send("x".repeat(MAX_FRAME + 1));
      else c.send(new Uint8Array(MAX_FRAME + 1));
      await Promise.race([c.closed, sleep(5000)]);
    });
    expectCode(`${kind} frame over the limit`, code, [1009]);
  }

  // Sends racing a close, from both sides.
  for (let i = 0; i < 3; i++) {
    code = await session(`${wsBase}/terminal/${projectId}?ticket=${await ticket()}`, (c) => {
      c.send("echo racing\r");
      c.ws.close(4000 + i);
      try {
        c.send(new Uint8Array(1024));
        c.ws.send("after close");
      } catch { /* the client refuses: fine */ }
      frames += 3;
      return Promise.resolve();
    });
    expectCode("send after close", code, [1000, 1005, 4000 + i]);
  }

  // Not WebSocket at all: raw bytes after a valid upgrade, a truncated handshake, junk.
  const rawCase = async (payload: (t: string) => Uint8Array[]) => {
    raw++;
    // Closed at the end of the scope (a conn's dispose ignores one already closed).
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(proxy).port) });
    for (const chunk of payload(await ticket())) {
      await conn.write(chunk).catch(() => 0);
      await sleep(20);
    }
    const buf = new Uint8Array(4096);
    await Promise.race([conn.read(buf).catch(() => null), sleep(1500)]);
  };
  const enc = (s: string) => new TextEncoder().encode(s);
  const upgrade = (t: string) =>
    enc(
      `GET /terminal/${projectId}?ticket=${t} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        "Sec-WebSocket-Version: 13\r\n\r\n",
    );
  await rawCase((t) => [upgrade(t), crypto.getRandomValues(new Uint8Array(4096))]);
  await rawCase((
    t,
  ) => [upgrade(t), new Uint8Array([0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
  await rawCase((t) => [upgrade(t), new Uint8Array([0x82, 0x05, 1, 2, 3, 4, 5])]); // unmasked
  await rawCase((t) => [upgrade(t).slice(0, 40)]);
  await rawCase(() => [crypto.getRandomValues(new Uint8Array(2048))]);
  await rawCase(
    () => [enc("GET /terminal/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc")],
  );

  // The proxy still serves: health, and a new shell that works.
  const health = await fetch(`${proxy}/health`);
  if (health.status !== 200) findings.push(`proxy /health ${health.status}`);
  await health.body?.cancel();
  code = await session(`${wsBase}/terminal/${projectId}?ticket=${await ticket()}`, async (c) => {
    const out = await c.run("echo still-$((40+2))", 15_000).catch((err) =>
      `failed: ${err.message}`
    );
    if (out.trim() !== "still-42") {
      findings.push(`a fresh shell after the fuzz: ${out.slice(0, 200)}`);
    }
    c.close(1000);
  });
  expectCode("fresh shell", code, [1000, 1005]);
  return { findings, codes, connections, frames, raw };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
