// The API's JSON-only rule and its exceptions (the routes that take HTML forms and
// form-encoded OAuth requests) hold whatever order the routes are mounted in.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { jsonBodiesExcept } from "@/web/http/middleware.ts";
import type { AppEnv } from "@/web/http/types.ts";
import { createErrorHandler } from "@/web/http/errors.ts";
import { silentLogger } from "@/core/log.ts";

const form = (path: string) =>
  new Request(`http://x${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "a=1",
  });

Deno.test("the JSON-only rule exempts the form routes, mounted before it or after", async () => {
  for (const formsFirst of [true, false]) {
    const forms = new Hono<AppEnv>().post("/browser/login", (c) => c.text("form taken"));
    const json = new Hono<AppEnv>()
      .post("/login", (c) => c.text("json route reached"))
      .post("/browser/:other", (c) => c.text("json route reached"));
    const app = new Hono<AppEnv>();
    app.onError(createErrorHandler(silentLogger));
    if (formsFirst) app.route("/auth", forms);
    app.use("/auth/*", jsonBodiesExcept("/auth", forms));
    if (!formsFirst) app.route("/auth", forms);
    app.route("/auth", json);

    const taken = await app.request(form("/auth/browser/login"));
    assert.equal(await taken.text(), "form taken", `forms first: ${formsFirst}`);
    for (const path of ["/auth/login", "/auth/browser/logout"]) {
      const refused = await app.request(form(path));
      assert.equal(refused.status, 415, `${path}, forms first: ${formsFirst}`);
      assert.equal((await refused.json()).code, "unsupported_media_type");
    }
    // A GET to a form path is no exemption for anything else: only the route's own method.
    const otherMethod = await app.request(
      new Request("http://x/auth/browser/login", {
        method: "PUT",
        headers: { "content-type": "text/plain" },
        body: "x",
      }),
    );
    assert.equal(otherMethod.status, 415);
  }
});
