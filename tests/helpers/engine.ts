// Tests that need the container engine use this to find it, and fail loudly when it is
// missing: a green run must mean the engine code really ran. Set
// POMODEX_SKIP_ENGINE_TESTS=1 to mark those tests ignored instead.
import { DockerClient, findDockerSocket } from "@/infra/docker/mod.ts";
import { messageOf } from "@/core/errors.ts";
import { sandboxImage } from "./env.ts";

export const SKIP_ENGINE_TESTS = Deno.env.get("POMODEX_SKIP_ENGINE_TESTS") === "1";

/**
 * The engine settings of the run (scripts/test.sh sets them), for every app a test builds:
 * the app under test must drive the same engine, image and isolation as the assertions read.
 * SANDBOX_IMAGE is required (the config's default would be another image than the run's);
 * without DOCKER_HOST the app finds the engine as engineSocketPath() does.
 */
export function engineEnv(): Record<string, string> {
  const optional = ["DOCKER_HOST", "SANDBOX_USERNS"];
  return {
    SANDBOX_IMAGE: sandboxImage(),
    ...Object.fromEntries(
      optional.map((n) => [n, Deno.env.get(n)]).filter((e): e is [string, string] => !!e[1]),
    ),
  };
}

/** DOCKER_HOST, else the socket production discovery finds (findDockerSocket). */
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
 * An image to run throwaway containers from: POMODEX_TEST_IMAGE when set, else the run's
 * sandbox image (SANDBOX_IMAGE). Nothing else is tried: an image the run did not name fails.
 */
export async function testImage(client: DockerClient): Promise<string> {
  const ref = Deno.env.get("POMODEX_TEST_IMAGE") || sandboxImage();
  if (await client.inspectImage(ref)) return ref;
  throw new Error(
    `The test image ${ref} is not in the engine: build it (scripts/build-sandbox-image.sh)`,
  );
}

export function uniqueName(prefix = "pomodex-test"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export const TEST_LABELS = { "pomodex.test": "1" };
