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
deno task bench "$@"
