// The dashboard's access token is renewed transparently: with a 3-second token, a projects
// list that follows a restore keeps updating past its expiry, renewing through the HttpOnly
// refresh cookie, without a reload and without a trip to the login page.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  type DashboardServer,
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
    const email = `renew-${crypto.randomUUID().slice(0, 8)}@example.com`;
    let server: DashboardServer | undefined;
    let browser: TestBrowser | undefined;
    try {
      server = await startDashboardServer({
        dataDir,
        databaseUrl: db.url,
        env: { ACCESS_TOKEN_TTL_SECONDS: String(ACCESS_TTL_SECONDS) },
      });
      const base = server.base;
      browser = await withDeadline("launching chromium", SETUP_DEADLINE_MS, launchBrowser);
      const page: Page = browser.page;
      const refreshes: number[] = [];
      // In order: the renewals, and the API calls refused for an expired token.
      const events: string[] = [];
      page.on("response", (res) => {
        const path = new URL(res.url()).pathname;
        if (path === "/auth/browser/refresh") {
          refreshes.push(res.status());
          events.push(`refresh ${res.status()}`);
        } else if (res.status() === 401) events.push(`401 ${path}`);
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

      // The list polls every 2 s; wait until its token has expired under it (a poll answered
      // 401: the lifetime plus the 5 s of clock skew verification allows) and the page has
      // renewed it after that. Then a change must still show up.
      const renewed = () => {
        const expiredAt = events.findIndex((e) => e.startsWith("401 "));
        return expiredAt >= 0 && events.slice(expiredAt).includes("refresh 200");
      };
      for (const until = Date.now() + 60_000; !renewed() && Date.now() < until;) {
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(renewed(), `expired and renewed: ${JSON.stringify(events)}`);
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
