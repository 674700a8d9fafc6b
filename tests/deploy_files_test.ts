import assert from "node:assert/strict";
import { parse } from "yaml";

// No Docker engine runs here, so the deployment files are checked by reading them.
const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));
const exists = (path: string) => Deno.stat(new URL(path, root)).then(() => true, () => false);

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  network_mode?: string;
  ports?: string[];
}

Deno.test("docker-compose.yml describes the production shape", async () => {
  const compose = parse(await read("docker-compose.yml")) as {
    services: Record<string, Service>;
    volumes: Record<string, unknown>;
  };
  const { db, app, terminal, registry } = compose.services;

  assert.equal(db.image, "postgres:16");
  assert.ok(db.volumes?.some((v) => v.startsWith("pgdata:")), "database on a named volume");
  assert.ok("pgdata" in compose.volumes);
  assert.match(db.healthcheck!.test.join(" "), /pg_isready/);

  assert.equal(app.build, ".");
  assert.equal(app.depends_on?.db.condition, "service_healthy");
  // Sandboxes' SSH ports and the registry are published on the host by its engine, so the
  // app lives on the host's network and reaches the database there too.
  assert.equal(app.network_mode, "host");
  assert.match(app.environment!.DATABASE_URL, /@127\.0\.0\.1:5432\//);
  assert.ok(db.ports?.includes("127.0.0.1:5432:5432"));
  assert.equal(app.environment!.HOST_IP, "${HOST_IP:-127.0.0.1}");

  assert.match(registry.image!, /^registry:/);
  assert.equal(registry.environment?.REGISTRY_STORAGE_DELETE_ENABLED, "true");

  for (const [name, service] of [["app", app], ["terminal", terminal]] as const) {
    assert.ok(
      service.volumes?.includes("/var/run/docker.sock:/var/run/docker.sock"),
      `${name} mounts the engine socket`,
    );
  }
  // The proxy calls /internal/* over loopback: the host's, shared with the app.
  assert.equal(terminal.network_mode, "host");
  assert.match(terminal.environment!.API_INTERNAL_URL, /^http:\/\/127\.0\.0\.1:/);
  // The proxy's health is its own port's, not the app's the image probes by default.
  assert.ok(
    terminal.healthcheck!.test.join(" ").includes(
      `127.0.0.1:${terminal.environment!.TERMINAL_PROXY_PORT}/health`,
    ),
  );

  // Every entry point a service runs exists, and every variable set is one the app reads.
  const { configVariables } = await import("@/core/config.ts");
  for (const service of [app, terminal]) {
    for (const arg of service.command ?? []) {
      if (arg.endsWith(".ts")) assert.ok(await exists(arg), `${arg} exists`);
    }
    for (const name of Object.keys(service.environment ?? {})) {
      assert.ok(configVariables.includes(name), `${name} is a Pomodex variable`);
    }
  }
});

Deno.test("Dockerfile builds a non-root image with a health check", async () => {
  const text = await read("Dockerfile");
  const instructions = text.split("\n").filter((l) => /^[A-Z]+ /.test(l));
  const user = instructions.filter((l) => l.startsWith("USER ")).at(-1);
  assert.ok(user && !/\broot\b|\b0\b/.test(user), "the final USER is not root");
  assert.ok(instructions.some((l) => l.startsWith("HEALTHCHECK ")));
  assert.match(text, /\/health/);
  const pinned = (await read("pomodex")).match(/DENO_VERSION=(\S+)/)![1];
  assert.match(instructions[0], new RegExp(`^FROM denoland/deno:${pinned.replace(/\./g, "\\.")}$`));
  for (const match of text.matchAll(/\b([a-z-]+\.ts)\b/g)) {
    assert.ok(await exists(match[1]), `${match[1]} exists`);
  }
});
