// The dashboard end to end in a real browser (Debian's chromium via playwright-core),
// against the real server (main.ts start()) with the real engine and terminal proxy:
// sign up → create a project → running → terminal: echo hello-$((1+1)) → hello-2 → stop →
// start → delete. Screenshots of every page go to test-output/screenshots/ (not committed);
// axe-core checks every page; the projects page must load under 100 KB of gzipped JS.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { loadConfig } from "@/core/config.ts";
import { DockerClient } from "@/infra/docker/mod.ts";
import { silentLogger } from "@/core/log.ts";
import { InternalApi, startTerminalProxy, type TerminalProxy } from "@/terminal/mod.ts";
import {
  axeViolations,
  type DashboardServer,
  flowSteps,
  isSerious,
  launchBrowser,
  removeLeftovers,
  removeProject,
  screenshot,
  scriptWeight,
  SETUP_DEADLINE_MS,
  SKIP_BROWSER_TESTS,
  startDashboardServer,
  teardownParts,
  type TestBrowser,
  withDeadline,
} from "./helpers/browser.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { engineSocketPath, SKIP_ENGINE_TESTS } from "./helpers/engine.ts";
import { forwarder } from "./helpers/ports.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

const JS_BUDGET_BYTES = 100 * 1024;
const PASSWORD = "correct horse battery";
const ADMIN = { email: "admin@example.com", password: "admin password 123" };

Deno.test({
  name: "dashboard in a real browser: sign up, create, terminal, stop, start, delete",
  ignore: SKIP_ENGINE_TESTS || SKIP_BROWSER_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const db = await createTestDatabase({ migrate: false });
    const dataDir = await Deno.makeTempDir({ prefix: "pomodex-e2e-" });
    const engine = new DockerClient({ socketPath: engineSocketPath() });
    let base = "";
    const settings = loadConfig({}).terminal;
    // The page's terminal URL is set before the server starts and must stay the same when
    // the proxy restarts: a port the test holds, forwarded to wherever the proxy is now.
    const terminalPort = forwarder();
    const startProxy = (apiPort: number) => {
      const started = startTerminalProxy({
        engine,
        api: new InternalApi({ baseUrl: `http://127.0.0.1:${apiPort}` }),
        log: silentLogger,
        settings,
        hostname: "127.0.0.1",
        port: 0,
      });
      terminalPort.target = started.addr.port;
      return started;
    };
    let proxy: TerminalProxy | null = null;
    // Set up inside the try below, so that a setup that fails is torn down too.
    let server!: DashboardServer;
    let browser!: TestBrowser;
    let page!: Page;
    const email = `e2e-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const name = `e2e-${crypto.randomUUID().slice(0, 6)}`;
    let projectId: string | null = null;
    const report: string[] = [];
    const axeReport: Record<string, string[]> = {};

    /** Screenshot and accessibility check of the page as it is now. */
    const review = async (shot: string) => {
      await screenshot(page, shot);
      const violations = await axeViolations(page);
      axeReport[shot] = violations.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes[0]})`);
      const serious = violations.filter(isSerious);
      assert.deepEqual(serious, [], `${shot}: serious or critical axe violations`);
    };
    const statusIs = (status: string, timeout = 120_000) =>
      page.locator(`#project-status[data-status="${status}"]`).waitFor({ timeout });

    const flow = flowSteps(t, (stepName, ms) => report.push(`  ${Math.round(ms)} ms: ${stepName}`));
    const step = flow.step;

    let completed = false;
    try {
      server = await startDashboardServer({
        dataDir,
        databaseUrl: db.url,
        env: {
          TERMINAL_PUBLIC_URL: `ws://localhost:${terminalPort.port}`,
          INITIAL_ADMIN_EMAIL: ADMIN.email,
          INITIAL_ADMIN_PASSWORD: ADMIN.password,
        },
      });
      base = server.base;
      proxy = startProxy(server.port);
      browser = await withDeadline("launching chromium", SETUP_DEADLINE_MS, launchBrowser);
      page = browser.page;
      const flowStarted = performance.now();

      await step("logged out: the login and signup pages", async () => {
        const res = await page.goto(`${base}/dashboard`);
        assert.ok(res?.ok());
        assert.match(page.url(), /\/login\?next=%2Fdashboard$/);
        await review("01-login");
        await page.getByRole("link", { name: "Create an account" }).click();
        await page.waitForURL(/\/signup/);
        await review("02-signup");
      });

      await step("sign up", async () => {
        await page.getByLabel("Email").fill(email);
        await page.getByLabel("Password").fill(PASSWORD);
        await page.getByRole("button", { name: "Create account" }).click();
        await page.waitForURL(/\/dashboard(\?flash=signed_up)?$/);
        await page.getByText("Welcome to Pomodex").waitFor();
        const cookies = await browser.context.cookies(base);
        const session = cookies.find((c) => c.name === "__Host-pomodex_refresh");
        assert.ok(session?.httpOnly && session.secure && session.sameSite === "Strict");
        await review("03-projects-empty");
        const js = await scriptWeight(page);
        report.push(`projects page JS (gzip): ${js.total} bytes in ${js.files.length} files`);
        assert.ok(js.total > 0, "the projects page loads its island");
        assert.ok(js.total < JS_BUDGET_BYTES, `projects page JS ${js.total} bytes`);
      });

      await step("create a project and wait for it to run", async () => {
        browser.expectedErrors.add("/dashboard/projects"); // the 422 of the empty name
        await page.getByLabel("Project name").fill("");
        await page.getByRole("button", { name: "Create project" }).click();
        await page.locator("#project-name-error").waitFor();
        await review("04-create-validation");
        await page.getByLabel("Project name").fill(name);
        const created = performance.now();
        await page.getByRole("button", { name: "Create project" }).click();
        await page.waitForURL(/\/dashboard\/projects\/[0-9a-f-]{36}/);
        projectId = /projects\/([0-9a-f-]{36})/.exec(page.url())![1];
        await statusIs("running");
        report.push(
          `create → running in the browser: ${Math.round(performance.now() - created)} ms`,
        );
        await page.getByLabel("SSH command").waitFor();
        const ssh = await page.getByLabel("SSH command").inputValue();
        assert.match(ssh, /^ssh -i ~\/\.ssh\/pomodex-[0-9a-f]{8}_ed25519 -p \d+ agent@/);
        await review("05-project-running");
        const js = await scriptWeight(page);
        report.push(`project page JS before the terminal (gzip): ${js.total} bytes`);
        assert.ok(js.total < JS_BUDGET_BYTES, `project page JS ${js.total} bytes`);
      });

      await step("SSH: copy the command, download the key", async () => {
        await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], {
          origin: base,
        });
        const command = await page.getByLabel("SSH command").inputValue();
        await page.getByRole("button", { name: "Copy command" }).click();
        await page.getByText("Copied", { exact: true }).waitFor();
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);
        const [download] = await Promise.all([
          page.waitForEvent("download"),
          page.getByRole("link", { name: "Download private key" }).click(),
        ]);
        assert.equal(download.suggestedFilename(), `pomodex-${projectId!.slice(0, 8)}_ed25519`);
        const key = await Deno.readTextFile((await download.path())!);
        assert.match(key, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
        assert.ok(command.includes(download.suggestedFilename()));
      });

      await step("the projects list shows it running", async () => {
        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Projects" })
          .click();
        await page.locator(`tr[data-project-id="${projectId}"] [data-status="running"]`).waitFor();
        await review("06-projects-list");
        await page.getByRole("link", { name }).click();
        await statusIs("running");
      });

      await step("live status: the pages follow a change without a reload", async () => {
        // A restore under way, staged in the database (this server runs no reconciler).
        await db.sql`UPDATE projects SET status = 'restoring' WHERE id = ${projectId}`;
        await page.goto(`${base}/dashboard`);
        const row = page.locator(`tr[data-project-id="${projectId}"]`);
        await row.locator('[data-status="restoring"]').waitFor();
        await setMarker(page);
        await db.sql`UPDATE projects SET status = 'running' WHERE id = ${projectId}`;
        await row.locator('[data-status="running"]').waitFor({ timeout: 10_000 });
        assert.ok(await hasMarker(page), "the list updated in place");
        // The project page's badge follows too; once settled the page renders again, since
        // its actions, SSH command and terminal depend on the state.
        await db.sql`UPDATE projects SET status = 'snapshotting' WHERE id = ${projectId}`;
        await page.goto(`${base}/dashboard/projects/${projectId}`);
        await statusIs("snapshotting");
        assert.equal(await page.getByLabel("SSH command").count(), 0);
        await db.sql`UPDATE projects SET status = 'running' WHERE id = ${projectId}`;
        await statusIs("running", 10_000);
        await page.getByLabel("SSH command").waitFor();
      });

      await step("the terminal: echo hello-$((1+1)) prints hello-2", async () => {
        await page.getByRole("button", { name: "Open terminal" }).click();
        await terminalConnected(page);
        await page.locator(".xterm-screen").click();
        await page.keyboard.type("echo hello-$((1+1))");
        await page.keyboard.press("Enter");
        await terminalShows(page, "hello-2");
        await review("07-terminal");
        const js = await scriptWeight(page);
        report.push(`project page JS with the terminal open (gzip): ${js.total} bytes`);
        // The terminal follows the window.
        const before = await terminalSize(page);
        await page.setViewportSize({ width: 900, height: 700 });
        await page.waitForFunction(
          (w) =>
            // deno-lint-ignore no-explicit-any
            (globalThis as any).document.querySelector(".xterm-screen")?.clientWidth < w,
          before.width,
        );
        await page.setViewportSize({ width: 1280, height: 900 });
      });

      await step("the terminal survives a reload and a dropped connection", async () => {
        // A reload re-attaches to the same shell, whose recent output is replayed.
        await page.reload();
        await terminalConnected(page);
        await terminalShows(page, "hello-2");
        // The proxy goes away (its shells with it) and comes back: the page reconnects.
        const problemsBefore = browser.problems.length;
        terminalPort.target = null; // meanwhile, the page's connects are hung up
        await proxy!.shutdown();
        proxy = null;
        await page.locator('#terminal-state[data-state="waiting"]').waitFor({ timeout: 10_000 });
        proxy = startProxy(server.port);
        await terminalConnected(page);
        // A connect the page tried during the outage was hung up on purpose, and the browser
        // logs that ("closed before receiving a handshake response"); nothing else may be.
        const duringOutage = browser.problems.splice(problemsBefore);
        browser.problems.push(
          ...duringOutage.filter((p) => !/WebSocket connection to '[^']*\/terminal\//.test(p)),
        );
        await page.locator(".xterm-screen").click();
        await page.keyboard.type("echo again-$((2+2))");
        await page.keyboard.press("Enter");
        await terminalShows(page, "again-4");
      });

      await step("phone-sized layout", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await review("08-project-phone");
        const overflow = await page.evaluate(() => {
          // deno-lint-ignore no-explicit-any
          const d = (globalThis as any).document.documentElement;
          return d.scrollWidth - d.clientWidth;
        });
        assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px)`);
        await page.setViewportSize({ width: 1280, height: 900 });
      });

      await step("dark theme", async () => {
        await page.emulateMedia({ colorScheme: "dark" });
        await review("09-project-dark");
        await page.goto(`${base}/dashboard`);
        await review("10-projects-dark");
        await page.emulateMedia({ colorScheme: "light" });
        await page.goto(`${base}/dashboard/projects/${projectId}`);
        await statusIs("running");
      });

      await step("an ended session: to the login page and back, by keyboard", async () => {
        await db.sql`
          UPDATE sessions SET revoked_at = now(), revoked_reason = 'test'
          WHERE user_id = (SELECT id FROM users WHERE email = ${email})`;
        // The open terminal may ask for a ticket with the dead session on its way out: a 401.
        browser.expectedErrors.add(`/projects/${projectId}/terminal-ticket`);
        browser.expectedErrors.add("/auth/browser/refresh");
        await page.reload();
        await page.waitForURL(/\/login\?next=%2Fdashboard%2Fprojects%2F/);
        // The email field has the focus already, and shows it.
        const focused = await focusedElement(page);
        assert.equal(focused.id, "email");
        assert.notEqual(focused.outline, "none", "visible focus");
        await page.keyboard.type(email);
        await page.keyboard.press("Tab");
        await page.keyboard.type(PASSWORD);
        await page.keyboard.press("Enter");
        await page.waitForURL(new RegExp(`/dashboard/projects/${projectId}$`));
        await statusIs("running");
      });

      await step("stop, then start again", async () => {
        await page.getByRole("button", { name: "Stop", exact: true }).click();
        await statusIs("stopped");
        await page.getByText("Only applies while the project is running").waitFor();
        await review("11-project-stopped");
        await page.getByRole("button", { name: "Start", exact: true }).click();
        await statusIs("running");
        await page.getByLabel("SSH command").waitFor();
      });

      await step("delete, confirming by name", async () => {
        await page.getByLabel(/Type the project name/).fill(name);
        await page.getByRole("button", { name: "Delete project" }).click();
        await page.waitForURL(/\/dashboard\?flash=delet(ed|ing)$/);
        await page.locator(`tr[data-project-id="${projectId}"]`).waitFor({
          state: "detached",
          timeout: 60_000,
        });
        await page.locator("#no-projects").waitFor({ timeout: 60_000 });
        // Forgotten by the teardown only once the engine shows it gone.
        assert.equal(
          await engine.inspectContainer(`pomodex-${projectId}`),
          null,
          "container removed",
        );
        assert.equal(await workspaceOnDisk(dataDir, projectId!), false, "workspace removed");
        projectId = null;
        await review("12-projects-after-delete");
      });
      if (!flow.failed) {
        report.push(
          `e2e flow (sign up → delete): ${Math.round(performance.now() - flowStarted)} ms`,
        );
      }

      await step("the 404 page, and logging out", async () => {
        browser.expectedErrors.add("/dashboard/no-such-page");
        const res = await page.goto(`${base}/dashboard/no-such-page`);
        assert.equal(res?.status(), 404);
        // The first Tab reaches the skip link, which shows it has the focus and works.
        await page.keyboard.press("Tab");
        const skip = await focusedElement(page);
        assert.equal(skip.text, "Skip to content");
        assert.notEqual(skip.outline, "none", "visible focus");
        await page.keyboard.press("Enter");
        assert.equal((await focusedElement(page)).id, "main");
        await review("13-not-found");
        await page.getByRole("button", { name: "Log out" }).click();
        await page.waitForURL(/\/login\?flash=logged_out$/);
        await page.goto(`${base}/dashboard`);
        assert.match(page.url(), /\/login\?next=/);
      });

      await step("the admin page", async () => {
        await page.goto(`${base}/login?next=%2Fdashboard%2Fadmin`);
        await page.getByLabel("Email").fill(ADMIN.email);
        await page.getByLabel("Password").fill(ADMIN.password);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.waitForURL(/\/dashboard\/admin$/);
        await page.getByRole("rowheader", { name: email, exact: true }).waitFor();
        await review("14-admin");
      });

      if (!flow.failed) {
        assert.deepEqual(browser.problems, [], "no console errors, CSP violations or page errors");
      }
      completed = true;
    } finally {
      console.log(report.join("\n"));
      console.log("axe findings (none serious or critical):", JSON.stringify(axeReport, null, 1));
      const teardown = teardownParts();
      if (browser) await teardown.run("closing the browser", () => browser.close());
      // The proxy goes before the project, as in production (its shells live in the
      // project's container), and the test's forwarder before it (no connection left open).
      await teardown.run("stopping the terminal proxy", async () => {
        await terminalPort.close();
        await proxy?.shutdown();
      });
      if (projectId) {
        await teardown.run(
          "deleting the project",
          () => removeProject(base, { email, password: PASSWORD }, projectId!),
        );
      }
      if (server) await teardown.run("stopping the server", () => server.shutdown());
      await teardown.run("removing leftovers", () => removeLeftovers(engine, dataDir, projectId));
      engine.close();
      await teardown.run("dropping the database", () => db.drop());
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
      // A teardown that failed (a project that would not go) fails a run that was green.
      if (completed) assert.deepEqual(teardown.errors, [], "teardown");
    }
  },
});

/**
 * The focused element: its id, text and outline style (visible focus). A page may still be
 * navigating (an island that saw a 401 heads for the login page too), so the read is
 * retried on the page that settles.
 */
async function focusedElement(page: Page) {
  for (let attempt = 0;; attempt++) {
    try {
      await page.waitForLoadState("load");
      return await page.evaluate(() => {
        // deno-lint-ignore no-explicit-any -- the page's globals
        const { document, getComputedStyle } = globalThis as any;
        const el = document.activeElement;
        return { id: el?.id, text: el?.textContent, outline: getComputedStyle(el).outlineStyle };
      });
    } catch (err) {
      if (attempt >= 5 || !/context was destroyed|navigat/i.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const terminalConnected = (page: Page) =>
  page.locator('#terminal-state[data-state="connected"]').waitFor({ timeout: 30_000 });

/** Waits until the terminal's screen (xterm's DOM rows) shows `text`. */
async function terminalShows(page: Page, text: string) {
  await page.waitForFunction(
    (t) =>
      // deno-lint-ignore no-explicit-any -- the page's document
      ((globalThis as any).document.querySelector(".xterm-rows")?.textContent ?? "").includes(t),
    text,
    { timeout: 20_000 },
  );
}

/** A mark on the page's window: gone after a reload or navigation. */
async function setMarker(page: Page) {
  // deno-lint-ignore no-explicit-any -- the page's window
  await page.evaluate(() => (globalThis as any).pomodexTestMarker = true);
}

async function hasMarker(page: Page): Promise<boolean> {
  // deno-lint-ignore no-explicit-any -- the page's window
  return await page.evaluate(() => (globalThis as any).pomodexTestMarker === true);
}

async function terminalSize(page: Page): Promise<{ width: number }> {
  return await page.evaluate(() => ({
    // deno-lint-ignore no-explicit-any
    width: (globalThis as any).document.querySelector(".xterm-screen")?.clientWidth ?? 0,
  }));
}
