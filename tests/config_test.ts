import assert from "node:assert/strict";
import { ConfigError, configVariables, loadConfig } from "@/core/config.ts";

Deno.test("defaults need no configuration at all", () => {
  const config = loadConfig({});
  assert.equal(config.port, 8000);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.dataDir, "./data");
  assert.equal(config.databaseUrl, undefined);
  assert.equal(config.idleThresholdMinutes, 30);
  assert.equal(config.terminal.port, 9000);
  assert.equal(config.terminal.publicUrl, "ws://localhost:9000");
  assert.equal(config.registry, undefined);
  assert.equal(config.gcp, undefined);
});

Deno.test("a bad value names its variable in one line", () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: "abc" }, "Invalid configuration: PORT must be a number"],
    [{ PORT: "70000" }, "Invalid configuration: PORT must be at most 65535"],
    [
      { IDLE_THRESHOLD_MINUTES: "0" },
      "Invalid configuration: IDLE_THRESHOLD_MINUTES must be at least 1",
    ],
    [
      { LOG_LEVEL: "loud" },
      "Invalid configuration: LOG_LEVEL must be one of: debug, info, warn, error",
    ],
    [
      { DATABASE_URL: "mysql://x" },
      "Invalid configuration: DATABASE_URL must start with postgres://",
    ],
    [{ HOST_IP: "not-an-ip" }, "Invalid configuration: HOST_IP must be an IP address"],
    [
      { INITIAL_ADMIN_EMAIL: "a@b.co" },
      "Invalid configuration: INITIAL_ADMIN_PASSWORD and INITIAL_ADMIN_EMAIL must be set together",
    ],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message.split("\n").length, 1);
      assert.equal(err.message, message);
      return true;
    });
  }
});

Deno.test(".env.example lists every variable, and nothing else", async () => {
  const text = await Deno.readTextFile(new URL("../.env.example", import.meta.url));
  const listed = [...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
  assert.deepEqual([...listed].sort(), [...configVariables].sort());
  // Each one is explained by a comment somewhere above it.
  assert.ok(text.split("\n").filter((l) => l.startsWith("#")).length > 30);
});

Deno.test("the .env.example defaults are the code's defaults", async () => {
  const text = await Deno.readTextFile(new URL("../.env.example", import.meta.url));
  const env = Object.fromEntries(
    [...text.matchAll(/^([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1], m[2]]),
  );
  assert.deepEqual(loadConfig(env), loadConfig({}));
});
