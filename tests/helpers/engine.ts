// Tests that need the container engine use this to find it, and fail loudly when it is
// missing: a green run must mean the engine code really ran. Set
// POMODEX_SKIP_ENGINE_TESTS=1 to mark those tests ignored instead.
import { DockerClient, findDockerSocket } from "@/infra/docker/mod.ts";
import { messageOf } from "@/core/errors.ts";

export const SKIP_ENGINE_TESTS = Deno.env.get("POMODEX_SKIP_ENGINE_TESTS") === "1";

/**
 * The engine settings of the run (scripts/test.sh sets them), for every app a test builds:
 * the app under test must drive the same engine, image and isolation as the assertions read.
 */
export function engineEnv(): Record<string, string> {
  const names = ["DOCKER_HOST", "SANDBOX_IMAGE", "SANDBOX_USERNS"];
  return Object.fromEntries(
    names.map((n) => [n, Deno.env.get(n)]).filter((e): e is [string, string] => !!e[1]),
  );
}

export function engineSocketPath(): string {
  return findDockerSocket(Deno.env.get("DOCKER_HOST"), Deno.env.get("XDG_RUNTIME_DIR"));
}

/** A connected client, or an error that says how to get an engine. Close it when done. */
export async function requireEngine(): Promise<DockerClient & Disposable> {
  // Disposable, so a test can write `using engine = await requireEngine()`.
  const client = Object.assign(new DockerClient({ socketPath: engineSocketPath() }), {
    [Symbol.dispose]() {
      client.close();
    },
  });
  try {
    // A missing engine fails at once (no socket); a busy one (Podman under the parallel
    // suite on two cores) may take seconds to answer, which is not a missing engine.
    await client.ping({ timeoutMs: 30_000 });
    await client.negotiate();
    return client;
  } catch (err) {
    client.close();
    throw new Error(
      `No container engine: ${messageOf(err)}. Start one (Podman: ` +
        "`podman system service --time=0 unix:///run/podman/podman.sock`, or set DOCKER_HOST), " +
        "or set POMODEX_SKIP_ENGINE_TESTS=1 to skip the tests that need it.",
      { cause: err },
    );
  }
}

/** Whether the engine answers, for code that wants to decide without failing. */
export async function engineAvailable(): Promise<boolean> {
  const client = new DockerClient({ socketPath: engineSocketPath(), timeoutMs: 3_000 });
  try {
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/**
 * An image to run throwaway containers from: POMODEX_TEST_IMAGE, else the sandbox image,
 * else the bare Debian base it is built from.
 */
export async function testImage(client: DockerClient): Promise<string> {
  const candidates = [
    Deno.env.get("POMODEX_TEST_IMAGE"),
    "localhost/pomodex-sandbox:latest",
    "localhost/debian-base:bookworm",
  ].filter((x): x is string => !!x);
  for (const ref of candidates) {
    if (await client.inspectImage(ref)) return ref;
  }
  throw new Error(`No test image in the engine; build one of: ${candidates.join(", ")}`);
}

export function uniqueName(prefix = "pomodex-test"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export const TEST_LABELS = { "pomodex.test": "1" };
