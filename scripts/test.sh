#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need
# (PostgreSQL, Podman's Docker API, a local registry, the sandbox image, Chromium),
# then runs every test. Called by `./pomodex test`, which .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-postgres.sh
bash scripts/setup-engine.sh
bash scripts/build-sandbox-image.sh
bash scripts/ensure-chromium.sh
# The tests log in over real SSH and make network namespaces for non-loopback peers.
for tool in ssh:openssh-client ip:iproute2; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}"; }
done

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/podman/podman.sock}"
export SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pomodex-sandbox:latest}"
export TEST_REGISTRY="${TEST_REGISTRY:-localhost:5000}"
# Podman 4.3 cannot snapshot a sandbox in a user namespace (docs/ISOLATION.md): the suite
# runs on it without one, and the isolation tests run again below on Docker, with one.
export SANDBOX_USERNS="${SANDBOX_USERNS:-off}"

deno fmt --check
deno lint
deno task check
# Bundles the dashboard's islands once, so that no test waits on a cold bundler.
deno task build >/dev/null
# Hard bounds: a hung test fails the run with a message instead of stalling CI.
timeout --kill-after=60 1800 deno task test "$@"
timeout --kill-after=60 1200 deno task test:reliability

# The second engine: real Docker with --userns-remap, for everything isolation promises.
bash scripts/setup-docker.sh
DOCKER_HOST=unix:///run/docker-test.sock SANDBOX_USERNS=required \
  timeout --kill-after=60 900 deno test -A --parallel \
  tests/isolation_test.ts tests/egress_test.ts tests/capacity_test.ts tests/ssh_probe_test.ts tests/disk_test.ts tests/isolation_repair_test.ts tests/gcp_mode_test.ts
