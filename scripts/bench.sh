#!/usr/bin/env bash
# The benchmarks need what the tests need: PostgreSQL, the engine, the registry, the image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
bash scripts/setup-engine.sh
bash scripts/build-sandbox-image.sh
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/podman/podman.sock}"
export SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pomodex-sandbox:latest}"
export TEST_REGISTRY="${TEST_REGISTRY:-localhost:5000}"
# As the test suite: Podman 4.3 cannot snapshot a sandbox in a user namespace
# (docs/ISOLATION.md), so on it the benchmarks run without one.
export SANDBOX_USERNS="${SANDBOX_USERNS:-off}"
# The project benches log in over real SSH; the egress bench puts a stand-in HTTPS site
# (a self-signed certificate) in a network namespace.
for tool in ssh:openssh-client ip:iproute2 openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}"; }
done
deno task bench "$@"
