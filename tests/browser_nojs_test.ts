// The dashboard with JavaScript off, in a real browser against the real server and engine:
// every page reads and every action works through plain forms and redirects (sign up,
// create with an inline validation error, stop, start, delete by name, log out). Islands
// only add live updates and the terminal; here their place says so.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { DockerClient } from "@/infra/docker/mod.ts";
import {
  type DashboardServer,
  flowSteps,
  launchBrowser,
  removeLeftovers,
  removeProject,
  screenshot,
  SETUP_DEADLINE_MS,
  SKIP_BROWSER_TESTS,
  startDashboardServer,
  teardownParts,
  type TestBrowser,
  withDeadline,
} from "./helpers/browser.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { engineSocketPath, SKIP_ENGINE_TESTS } from "./helpers/engine.ts";
import { workspaceOnDisk } from "./helpers/workspace.ts";

const PASSWORD = "correct horse battery";
/** A busy project's page refreshes itself every 5 s without JavaScript (a noscript meta). */
const SETTLE_MS = 120_000;

Deno.test({
  name: "dashboard with JavaScript off: sign up, create, stop, start, delete, log out by forms",
  ignore: SKIP_ENGINE_TESTS || SKIP_BROWSER_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const db = await createTestDatabase({ migrate: false });
    const dataDir = await Deno.makeTempDir({ prefix: "pomodex-nojs-" });
    const engine = new DockerClient({ socketPath: engineSocketPath() });
    let base = "";
    const email = `nojs-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const name = `nojs-${crypto.randomUUID().slice(0, 6)}`;
    let server!: DashboardServer;
    let browser!: TestBrowser;
    let page!: Page;
    let projectId: string | null = null;
    let completed = false;

    const { step } = flowSteps(t);
    const statusIs = (status: string) =>
      page.locator(`#project-status[data-status="${status}"]`).waitFor({ timeout: SETTLE_MS });

    try {
      server = await startDashboardServer({ dataDir, databaseUrl: db.url });
      base = server.base;
      browser = await withDeadline(
        "launching chromium",
        SETUP_DEADLINE_MS,
        () => launchBrowser({ javaScript: false }),
      );
      page = browser.page;

      await step("logged out: to the login page, then sign up", async () => {
        await page.goto(`${base}/dashboard`);
        assert.match(page.url(), /\/login\?next=%2Fdashboard$/);
        await page.getByRole("link", { name: "Create an account" }).click();
        await page.getByLabel("Email").fill(email);
        await page.getByLabel("Password").fill(PASSWORD);
        await page.getByRole("button", { name: "Create account" }).click();
        await page.getByText("Welcome to Pomodex").waitFor();
      });

      await step("create: the empty name's error inline, then the project page", async () => {
        await page.getByLabel("Project name").fill("");
        await page.getByRole("button", { name: "Create project" }).click();
        await page.locator("#project-name-error").waitFor();
        await page.getByLabel("Project name").fill(name);
        await page.getByRole("button", { name: "Create project" }).click();
        await page.waitForURL(/\/dashboard\/projects\/[0-9a-f-]{36}/);
        projectId = /projects\/([0-9a-f-]{36})/.exec(page.url())![1];
        await statusIs("running");
        const ssh = await page.getByLabel("SSH command").inputValue();
        assert.match(ssh, /^ssh -i ~\/\.ssh\/pomodex-[0-9a-f]{8}_ed25519 -p \d+ agent@/);
        // No island hydrated (the terminal's button comes with its script), and the page's
        // <noscript> took over: the empty terminal box is hidden.
        assert.equal(await page.getByRole("button", { name: "Open terminal" }).count(), 0);
        await page.locator(".terminal-section .island").waitFor({ state: "hidden" });
        await screenshot(page, "nojs-01-project-running");
      });

      await step("stop, then start again", async () => {
        await page.getByRole("button", { name: "Stop", exact: true }).click();
        await statusIs("stopped");
        await page.getByRole("button", { name: "Start", exact: true }).click();
        await statusIs("running");
        await page.getByLabel("SSH command").waitFor();
      });

      await step("delete, confirming by name; the list no longer has it", async () => {
        await page.getByLabel(/Type the project name/).fill(name);
        await page.getByRole("button", { name: "Delete project" }).click();
        await page.waitForURL(/\/dashboard\?flash=delet(ed|ing)$/);
        // Without JavaScript the list does not update itself: reload until it is gone.
        const row = page.locator(`tr[data-project-id="${projectId}"]`);
        for (let i = 0; i < 60 && await row.count() > 0; i++) {
          await new Promise((r) => setTimeout(r, 1_000));
          await page.reload();
        }
        assert.equal(await row.count(), 0);
        // Forgotten by the teardown only once the engine shows it gone.
        assert.equal(
          await engine.inspectContainer(`pomodex-${projectId}`),
          null,
          "container removed",
        );
        assert.equal(await workspaceOnDisk(dataDir, projectId!), false, "workspace removed");
        projectId = null;
      });

      await step("log out", async () => {
        await page.getByRole("button", { name: "Log out" }).click();
        await page.waitForURL(/\/login\?flash=logged_out$/);
        await page.goto(`${base}/dashboard`);
        assert.match(page.url(), /\/login\?next=/);
      });
      completed = true;
    } finally {
      const teardown = teardownParts();
      if (browser) await teardown.run("closing the browser", () => browser.close());
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
      if (completed) assert.deepEqual(teardown.errors, [], "teardown");
    }
  },
});
