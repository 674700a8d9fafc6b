// The dashboard's access token is renewed transparently: with a 3-second token, a projects
// list that follows a restore keeps updating past its expiry, renewing through the HttpOnly
// refresh cookie, without a reload and without a trip to the login page.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import type { start } from "../main.ts";
import {
  freePort,
  launchBrowser,
  SETUP_DEADLINE_MS,
  SKIP_BROWSER_TESTS,
  startDashboardServer,
  type TestBrowser,
  withDeadline,
} from "./helpers/browser.ts";
import { createTestDatabase } from "./helpers/db.ts";

const PASSWORD = "correct horse battery";
const ACCESS_TTL_SECONDS = 3;

Deno.test({
  name: "dashboard: an expired access token is renewed behind the page, which keeps updating",
  ignore: SKIP_BROWSER_TESTS,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const db = await createTestDatabase({ migrate: false });
    const dataDir = await Deno.makeTempDir({ prefix: "pomodex-renewal-" });
    const apiPort = freePort();
    const base = `http://localhost:${apiPort}`;
    const email = `renew-${crypto.randomUUID().slice(0, 8)}@example.com`;
    let server: Awaited<ReturnType<typeof start>> | undefined;
    let browser: TestBrowser | undefined;
    try {
      server = await startDashboardServer({
        port: apiPort,
        dataDir,
        databaseUrl: db.url,
        env: { ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TTL_SECONDS) },
      });
      browser = await withDeadline("launching chromium", SETUP_DEADLINE_MS, launchBrowser);
      const page: Page = browser.page;
      const refreshes: number[] = [];
      page.on("response", (res) => {
        if (new URL(res.url()).pathname === "/auth/browser/refresh") refreshes.push(res.status());
      });

      await page.goto(`${base}/signup`);
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByText("Welcome to Pomodex").waitFor();

      // A restore under way, staged in the database (no engine needed for the list).
      const [{ id }] = await db.sql`
        INSERT INTO projects (user_id, name, status, ssh_public_key, gcs_prefix)
        SELECT id, 'restoring-one', 'restoring', 'k', 'x/' FROM users WHERE email = ${email}
        RETURNING id`;
      await page.goto(`${base}/dashboard`);
      const row = page.locator(`tr[data-project-id="${id}"]`);
      await row.locator('[data-status="restoring"]').waitFor();

      // The list polls every 2 s; let the token expire while it does (its lifetime plus the
      // 5 s of clock skew verification allows, plus a poll or so).
      await new Promise((r) => setTimeout(r, (ACCESS_TTL_SECONDS + 5 + 3) * 1000));
      await db.sql`UPDATE projects SET status = 'stopped' WHERE id = ${id}`;
      await row.locator('[data-status="stopped"]').waitFor({ timeout: 15_000 });

      assert.equal(new URL(page.url()).pathname, "/dashboard", "no trip to the login page");
      assert.ok(refreshes.length >= 2, `renewals: ${JSON.stringify(refreshes)}`);
      assert.ok(refreshes.every((s) => s === 200), `renewals: ${JSON.stringify(refreshes)}`);
      // The session is the one the sign-up opened, rotated, never replaced by a new login.
      const [{ sessions }] = await db.sql`SELECT count(*)::int AS sessions FROM sessions
        WHERE user_id = (SELECT id FROM users WHERE email = ${email})`;
      assert.equal(sessions, 1);
    } finally {
      await browser?.close();
      await server?.shutdown();
      await db.drop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
