// Podman answers 500 "... does not exist in database: no such container" when a container is
// inspected while another call removes it (seen in reliability/crash_test.ts): that is "gone".
import assert from "node:assert/strict";
import { DockerClient, DockerNotFound } from "@/infra/docker/mod.ts";
import { errorFromStatus } from "@/infra/docker/errors.ts";

Deno.test("a 500 'no such container' is not-found; inspect answers null", async () => {
  const podman = "container 3f2a does not exist in database: no such container";
  assert.ok(errorFromStatus(500, "inspect", podman) instanceof DockerNotFound);
  assert.ok(!(errorFromStatus(500, "inspect", "disk full") instanceof DockerNotFound));

  await using cleanup = new AsyncDisposableStack();
  const socket = `/tmp/pomodex-gone-${crypto.randomUUID().slice(0, 8)}.sock`;
  cleanup.defer(() => Deno.remove(socket).catch(() => {}));
  cleanup.use(Deno.serve({ path: socket, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path.endsWith("/json") && path.includes("/containers/going")) {
      return Response.json({ cause: "no such container", message: podman, response: 500 }, {
        status: 500,
      });
    }
    return Response.json({ message: "something else broke" }, { status: 500 });
  }));
  const client = new DockerClient({ socketPath: socket });
  cleanup.defer(() => client.close());
  assert.equal(await client.inspectContainer("going"), null);
  await assert.rejects(() => client.inspectContainer("other"), /something else broke/);
});
