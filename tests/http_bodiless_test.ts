// Over a real socket, a POST or DELETE without a body (`curl -X DELETE`, fetch with no body)
// reaches Deno.serve as an empty stream, not null. It must not be refused as "not JSON".
import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";
import { signUp } from "./helpers/users.ts";

Deno.test("bodiless POST and DELETE over HTTP are not 415; a non-JSON body still is", async () => {
  await using h = await createTestApp();
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req, info) => h.app.fetch(req, { remoteAddr: info.remoteAddr }),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const user = await signUp(h);
  const missing = crypto.randomUUID();
  const curl = async (...args: string[]) => {
    const out = await new Deno.Command("curl", {
      args: ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args],
    }).output();
    return Number(new TextDecoder().decode(out.stdout));
  };
  const auth = ["-H", `authorization: ${user.auth.authorization}`];
  // No Content-Length, no Transfer-Encoding: no body (RFC 9112 §6.3).
  assert.equal(await curl("-X", "DELETE", ...auth, `${base}/projects/${missing}`), 404);
  assert.equal(await curl("-X", "POST", ...auth, `${base}/projects/${missing}/stop`), 404);
  assert.equal(await curl("-X", "POST", ...auth, `${base}/projects/${missing}/activity`), 404);
  const res = await fetch(`${base}/projects/${missing}`, {
    method: "DELETE",
    headers: user.auth,
  });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).code, "not_found");

  // A body that is not JSON is still refused, with or without a length.
  assert.equal(
    await curl("-X", "POST", "-H", "content-type: text/plain", "-d", "x=1", `${base}/auth/login`),
    415,
  );
  assert.equal(
    await curl(
      "-X",
      "POST",
      "-H",
      "content-type: text/plain",
      "-H",
      "transfer-encoding: chunked",
      "-d",
      "x=1",
      `${base}/auth/login`,
    ),
    415,
  );
  // A JSON body without a length (chunked) is read as usual.
  const chunked = await fetch(`${base}/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: new Blob([JSON.stringify({ email: user.email, password: user.password })]).stream(),
  });
  assert.equal(chunked.status, 200);
  await chunked.body?.cancel();
});
