/**
 * The addresses of the services the tests and benchmarks drive, from the environment only:
 * a default would quietly test another registry, image or database server than the run's.
 * scripts/test.sh and scripts/bench.sh export them all. Each is read when called, never at
 * import, so a test file that imports a helper and needs none of them runs without them.
 * (The engine is found by engineSocketPath() in ./engine.ts: DOCKER_HOST, else the same
 * discovery production does.)
 */

/** The variable's value; throws, naming it and what it is for, when it is unset or empty. */
export function requiredEnv(name: string, what: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(
      `${name} is not set: ${what} (scripts/test.sh sets it; run the suite with ./pomodex test)`,
    );
  }
  return value;
}

/** The local registry the test command starts (snapshots are pushed there). */
export function testRegistry(): string {
  return requiredEnv("TEST_REGISTRY", "the address of the registry snapshots are pushed to");
}

/** The sandbox image the run built, which every container of the tests runs. */
export function sandboxImage(): string {
  return requiredEnv("SANDBOX_IMAGE", "the sandbox image the containers run");
}

/** The PostgreSQL server each test makes a database of its own in. */
export function testDatabaseUrl(): string {
  return requiredEnv("TEST_DATABASE_URL", "the PostgreSQL server the test databases are made in");
}
