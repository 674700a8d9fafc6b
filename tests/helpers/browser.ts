/**
 * A real browser for the dashboard's end-to-end test: Debian's chromium driven by
 * playwright-core, axe-core for accessibility, screenshots into test-output/ (gitignored).
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { messageOf } from "@/core/errors.ts";
import { loadConfig } from "@/core/config.ts";
import type { DockerClient } from "@/infra/docker/mod.ts";
import { start } from "@/main.ts";
import { removeWorkspaceOf } from "./workspace.ts";
import { engineEnv } from "./engine.ts";

export const CHROMIUM = Deno.env.get("POMODEX_CHROMIUM") ?? "/usr/bin/chromium";
export const SCREENSHOT_DIR = new URL("../../test-output/screenshots/", import.meta.url).pathname;
const AXE = new URL("../../node_modules/axe-core/axe.min.js", import.meta.url);

/**
 * Browser tests run unless POMODEX_SKIP_BROWSER_TESTS=1 says otherwise: a missing Chromium
 * fails them with a message (launchBrowser), so a green run always means they ran.
 */
export const SKIP_BROWSER_TESTS = Deno.env.get("POMODEX_SKIP_BROWSER_TESTS") === "1";

async function requireChromium(): Promise<void> {
  try {
    if ((await Deno.stat(CHROMIUM)).isFile) return;
  } catch {
    // reported below
  }
  throw new Error(
    `No Chromium at ${CHROMIUM}: install it (bash scripts/ensure-chromium.sh), point ` +
      "POMODEX_CHROMIUM at one, or set POMODEX_SKIP_BROWSER_TESTS=1 to skip the browser tests.",
  );
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions, CSP violations included. */
  problems: string[];
  /** Paths expected to answer 4xx (the browser logs those as console errors). */
  expectedErrors: Set<string>;
  close(): Promise<void>;
}

/** Chromium with a fresh profile; nothing of the machine's own browser state. */
export async function launchBrowser(opts: { javaScript?: boolean } = {}): Promise<TestBrowser> {
  await requireChromium();
  const userDataDir = await Deno.makeTempDir({ prefix: "pomodex-chromium-" });
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    javaScriptEnabled: opts.javaScript ?? true,
    timeout: 60_000,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Scripting off at the settings level too, so that <noscript> content renders, as in
      // a browser whose user turned JavaScript off (the protocol switch alone does not).
      ...(opts.javaScript === false ? ["--blink-settings=scriptEnabled=false"] : []),
    ],
  });
  // No wait in the test may hang the suite: playwright's defaults are 30 s for actions and
  // none at all for some waits.
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = context.pages()[0] ?? await context.newPage();
  const problems: string[] = [];
  const expectedErrors = new Set<string>();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // A page that answers 404 or 422 on purpose logs its own status; not a problem.
    const path = new URL(msg.location().url).pathname;
    if (/status of 4\d\d/.test(msg.text()) && expectedErrors.has(path)) return;
    problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return {
    context,
    page,
    problems,
    expectedErrors,
    async close() {
      // A wedged browser must not hold the suite: give it 15 s, then kill its processes.
      const closed = await withDeadline("closing chromium", 15_000, () => context.close())
        .then(() => true, () => false);
      if (!closed) {
        await new Deno.Command("pkill", { args: ["-9", "-f", userDataDir] }).output()
          .catch(() => {});
      }
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/**
 * Runs axe-core in the page. Its source is evaluated through the DevTools protocol rather
 * than added as a <script> element, which the page's CSP (rightly) refuses.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const source = await Deno.readTextFile(AXE);
  await page.evaluate(source);
  return await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any -- page globals: axe is what the source just defined
    const { axe, document } = globalThis as any;
    const result = await axe.run(document, {
      runOnly: {
        type: "tag",
        values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
      },
      resultTypes: ["violations"],
    });
    // deno-lint-ignore no-explicit-any -- axe's result objects
    return result.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      // deno-lint-ignore no-explicit-any
      nodes: v.nodes.slice(0, 5).map((n: any) => n.target.join(" ")),
    }));
  });
}

export const isSerious = (v: AxeViolation) => v.impact === "serious" || v.impact === "critical";

export async function screenshot(page: Page, name: string): Promise<string> {
  await Deno.mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = `${SCREENSHOT_DIR}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The JavaScript a page loaded: each script's transferred (encoded, here gzip) size. */
export async function scriptWeight(
  page: Page,
): Promise<{ total: number; files: [string, number][] }> {
  const files = await page.evaluate(() =>
    (performance.getEntriesByType("resource") as unknown as {
      name: string;
      encodedBodySize: number;
    }[])
      .filter((e) => new URL(e.name).pathname.endsWith(".js"))
      .map((e) => [new URL(e.name).pathname, e.encodedBodySize] as [string, number])
  );
  return { total: files.reduce((n, [, size]) => n + size, 0), files };
}

/**
 * Runs `work`, failing with a clear message if it has not settled within `ms`. The work
 * itself is not cancelled; the point is that a hang becomes a named failure, not a suite
 * that never ends.
 */
export async function withDeadline<T>(
  what: string,
  ms: number,
  work: () => Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A failed run's project, deleted through the API as its owner. */
export async function removeProject(
  base: string,
  owner: { email: string; password: string },
  id: string,
) {
  try {
    const login = await fetch(`${base}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(owner),
    });
    const { access_token } = await login.json();
    for (let i = 0; i < 60; i++) {
      const res = await fetch(`${base}/projects/${id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${access_token}` },
      });
      await res.body?.cancel();
      if (res.status !== 409) return; // busy snapshotting or restoring: wait for it
      await new Promise((r) => setTimeout(r, 2_000));
    }
  } catch (err) {
    console.error("cleanup through the API failed:", err);
  }
}

/** Whatever the engine still holds for the project, in case the API could not remove it. */
export async function removeLeftovers(engine: DockerClient, dataDir: string, id: string | null) {
  if (!id) return;
  await engine.removeContainer(`pomodex-${id}`, { force: true }).catch(() => {});
  await removeWorkspaceOf(dataDir, id).catch(() => {});
  await engine.removeNetwork(`pomodex-net-${id}`).catch(() => {});
  for (const image of await engine.listImages(`localhost/pomodex-snapshot-${id}`).catch(() => [])) {
    await engine.removeImage(image.Id, { force: true }).catch(() => {});
  }
}

// A hang anywhere in a browser test becomes a named failure within these bounds.
export const SETUP_DEADLINE_MS = 120_000;
/** A step may wait for a stop and then a start, each allowed 120 s. */
export const STEP_DEADLINE_MS = 300_000;
export const TEARDOWN_DEADLINE_MS = 150_000;

export type DashboardServer = Awaited<ReturnType<typeof start>> & {
  /** http://localhost:<port> */
  base: string;
};

/**
 * The real server (main.ts start()) for a browser, at http://localhost:<port>: localhost,
 * not 127.0.0.1, since Chromium keeps Secure (__Host-) cookies on http://localhost. No
 * terminal proxy child and no cron; `env` adds or overrides settings.
 *
 * Its PUBLIC_URL must name its port before it starts, so it cannot bind port 0: it takes a
 * port that was free a moment ago, and if that port was taken meanwhile (the bind fails with
 * AddrInUse; start() then leaves nothing running), it starts again on another.
 */
export function startDashboardServer(
  opts: { dataDir: string; databaseUrl: string; env?: Record<string, string> },
): Promise<DashboardServer> {
  return withDeadline("starting the server", SETUP_DEADLINE_MS, async () => {
    for (let attempt = 1;; attempt++) {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      const base = `http://localhost:${port}`;
      try {
        const server = await start(loadConfig({
          ...engineEnv(),
          HOST: "127.0.0.1",
          PORT: String(port),
          PUBLIC_URL: base,
          DATA_DIR: opts.dataDir,
          DATABASE_URL: opts.databaseUrl,
          TERMINAL_PROXY: "false",
          CRON: "false",
          LOG_LEVEL: "error",
          ...opts.env,
        }));
        return { ...server, base };
      } catch (err) {
        if (!(err instanceof Deno.errors.AddrInUse) || attempt >= 5) throw err;
        console.warn(`port ${port} was taken before the server bound it; another one`);
      }
    }
  });
}

/**
 * The steps of one flow through the dashboard, each under STEP_DEADLINE_MS. A failed step
 * makes the later ones meaningless: they are skipped, not failed again.
 */
export function flowSteps(t: Deno.TestContext, onPassed?: (name: string, ms: number) => void) {
  let failed = false;
  return {
    get failed() {
      return failed;
    },
    async step(name: string, fn: () => Promise<void>) {
      const began = performance.now();
      const ok = await t.step({
        name,
        ignore: failed,
        fn: () => withDeadline(name, STEP_DEADLINE_MS, fn),
      });
      if (!ok) failed = true;
      else onPassed?.(name, performance.now() - began);
    },
  };
}

/**
 * Teardown in parts, each on its own deadline: one that fails or hangs is reported and
 * kept in `errors`, and the rest go on.
 */
export function teardownParts() {
  const errors: string[] = [];
  return {
    errors,
    async run(what: string, work: () => Promise<unknown>) {
      await withDeadline(what, TEARDOWN_DEADLINE_MS, work).catch((err) => {
        errors.push(messageOf(err));
        console.error(`teardown: ${errors.at(-1)}`);
      });
    },
  };
}
