#!/usr/bin/env bash
# Builds the Pomodex sandbox image with Podman (or Docker), without any image
# registry:
#   1. if missing, makes a local Debian base image from debootstrap
#      (localhost/debian-base:bookworm) that already holds every package in
#      sandbox/packages.txt, so the Dockerfile's install step is skipped;
#      with ENGINE=docker it imports the rootfs of Podman's base image when
#      Podman has one (the same debootstrap base), else debootstraps;
#   2. if missing (or sandbox/ changed since, or --force), builds
#      sandbox/Dockerfile FROM that base.
# Idempotent; a second run only inspects the two images.
#
# Usage: scripts/build-sandbox-image.sh [--force] [--rebuild-base]
#   --force         rebuild the sandbox image even if it is up to date
#   --rebuild-base  debootstrap the base image again (implies --force)
# Environment:
#   SANDBOX_IMAGE   image to build          (localhost/pomodex-sandbox:latest)
#   BASE_IMAGE      base image to build FROM (localhost/debian-base:bookworm)
#   DEBIAN_SUITE    suite for debootstrap    (bookworm)
#   BUILD_TMPDIR    where the rootfs is made (/var/tmp)
#   ENGINE          podman (default) or docker: which engine's image store
#   DOCKER_HOST     with ENGINE=docker, required: the daemon to build in, e.g.
#                   unix:///run/docker-test.sock (no default, so that a build
#                   never lands in another daemon than the one meant)
#   DOCKER_CLI      with ENGINE=docker, the client (/usr/bin/docker, Debian's,
#                   if present; else docker from PATH)
set -euo pipefail

SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pomodex-sandbox:latest}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-base:bookworm}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
BUILD_TMPDIR="${BUILD_TMPDIR:-/var/tmp}"
ENGINE="${ENGINE:-podman}"

force=0
rebuild_base=0
for arg in "$@"; do
  case "$arg" in
  --force) force=1 ;;
  --rebuild-base)
    rebuild_base=1
    force=1
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build-sandbox-image: unknown argument: $arg" >&2
    exit 2
    ;;
  esac
done

log() { printf '%s\n' "$*"; }
die() {
  printf 'build-sandbox-image: error: %s\n' "$*" >&2
  exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
context="$repo_root/sandbox"
[[ -f "$context/Dockerfile" ]] || die "no Dockerfile in $context"
case "$ENGINE" in
podman)
  command -v podman >/dev/null || die "podman is not installed: run scripts/setup-engine.sh first"
  ;;
docker)
  [[ -n "${DOCKER_HOST:-}" ]] || die "ENGINE=docker needs DOCKER_HOST (e.g. unix:///run/docker-test.sock)"
  if [[ -z "${DOCKER_CLI:-}" ]]; then
    if [[ -x /usr/bin/docker ]]; then DOCKER_CLI=/usr/bin/docker; else DOCKER_CLI=docker; fi
  fi
  command -v "$DOCKER_CLI" >/dev/null || die "no docker client ($DOCKER_CLI): run scripts/setup-docker.sh first"
  ;;
*) die "ENGINE must be podman or docker, got '$ENGINE'" ;;
esac

# The Docker client, always on the daemon named by DOCKER_HOST.
dockercli() { "$DOCKER_CLI" --host "$DOCKER_HOST" "$@"; }

# Content hash of the build context: an image built from other files is stale.
context_hash="$(cd "$context" && find . -type f -print0 | LC_ALL=C sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-64)"

image_label() {
  if [[ "$ENGINE" == docker ]]; then
    dockercli image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
  else
    podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
  fi
}

image_exists() {
  if [[ "$ENGINE" == docker ]]; then
    dockercli image inspect "$1" >/dev/null 2>&1
  else
    podman image exists "$1"
  fi
}

# Imports a rootfs tar stream (stdin) as image $1 into the engine.
import_base() {
  local changes=(
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'CMD ["/bin/bash"]'
  )
  if [[ "$ENGINE" == docker ]]; then
    dockercli import "${changes[@]}" - "$1" >/dev/null
  else
    podman import --quiet "${changes[@]}" - "$1" >/dev/null
  fi
}

# ------------------------------------------------------------------ base ----
rootfs=""
podman_mounted=""
cleanup() {
  if [[ -n "$podman_mounted" ]]; then
    podman image unmount "$podman_mounted" >/dev/null 2>&1 || true
    podman_mounted=""
  fi
  if [[ -n "$rootfs" && -d "$rootfs" ]]; then
    # debootstrap mounts proc/sys inside the target; never rm through a mount.
    local m
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$rootfs/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r)
    rm -rf --one-file-system "$rootfs"
  fi
}
trap cleanup EXIT

if ((rebuild_base == 0)) && image_exists "$BASE_IMAGE"; then
  log "base image: $BASE_IMAGE already present"
elif [[ "$ENGINE" == docker ]] && ((rebuild_base == 0)) && command -v podman >/dev/null &&
  podman image exists "$BASE_IMAGE" 2>/dev/null; then
  # The same debootstrap base as Podman's: its rootfs, imported as is.
  [[ "$(id -u)" == 0 ]] || die "reading Podman's base image needs root"
  t0=$SECONDS
  mnt="$(podman image mount "$BASE_IMAGE")" || die "podman image mount $BASE_IMAGE failed"
  podman_mounted="$BASE_IMAGE"
  tar --numeric-owner -C "$mnt" -c . | import_base "$BASE_IMAGE"
  cleanup
  log "base image: imported $BASE_IMAGE from Podman's into Docker in $((SECONDS - t0)) s"
else
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is not installed: run scripts/setup-engine.sh first"
  include="$(sed -e 's/#.*//' "$context/packages.txt" | tr -s ' \n' '\n' | grep -v '^$' | paste -sd, -)"
  rootfs="$(mktemp -d "$BUILD_TMPDIR/pomodex-rootfs.XXXXXX")"
  deboot_log="$BUILD_TMPDIR/pomodex-debootstrap.log"
  log "base image: debootstrap --variant=minbase $DEBIAN_SUITE (+ $include) into $rootfs ..."
  t0=$SECONDS
  # No mirror argument: debootstrap's default mirror is used.
  if ! debootstrap --variant=minbase --include="$include" "$DEBIAN_SUITE" "$rootfs" \
    >"$deboot_log" 2>&1 </dev/null; then
    tail -n 30 "$deboot_log" >&2
    die "debootstrap failed (full log: $deboot_log)"
  fi
  log "base image: debootstrap done in $((SECONDS - t0)) s ($(du -sm "$rootfs" | cut -f1) MB)"
  # Host files debootstrap copied in; the engine provides these at run time.
  : >"$rootfs/etc/resolv.conf"
  rm -f "$rootfs/etc/hostname"
  rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/*.bin "${rootfs:?}"/var/cache/apt/archives/*.deb
  t0=$SECONDS
  tar --numeric-owner -C "$rootfs" -c . | import_base "$BASE_IMAGE"
  log "base image: imported $BASE_IMAGE in $((SECONDS - t0)) s"
  cleanup
  rootfs=""
fi

# --------------------------------------------------------------- sandbox ----
if ((force == 0)) && image_exists "$SANDBOX_IMAGE"; then
  built_hash="$(image_label "$SANDBOX_IMAGE" pomodex.sandbox.context)"
  built_base="$(image_label "$SANDBOX_IMAGE" pomodex.sandbox.base)"
  if [[ "$built_hash" == "$context_hash" && "$built_base" == "$BASE_IMAGE" ]]; then
    log "sandbox image: $SANDBOX_IMAGE already up to date"
    exit 0
  fi
  log "sandbox image: $SANDBOX_IMAGE is out of date with sandbox/ (or was built from another base): rebuilding"
fi

build_log="$BUILD_TMPDIR/pomodex-sandbox-build.log"
log "sandbox image: building $SANDBOX_IMAGE FROM $BASE_IMAGE ..."
t0=$SECONDS
if [[ "$ENGINE" == docker ]]; then
  build_log="$BUILD_TMPDIR/pomodex-sandbox-build-docker.log"
  # The classic builder: no BuildKit or buildx plugin needed, and nothing is
  # pulled (the base is local; a missing one fails instead of reaching a hub).
  if ! DOCKER_BUILDKIT=0 dockercli build \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "pomodex.sandbox.context=$context_hash" \
    --label "pomodex.sandbox.base=$BASE_IMAGE" \
    -t "$SANDBOX_IMAGE" "$context" >"$build_log" 2>&1 </dev/null; then
    tail -n 30 "$build_log" >&2
    die "docker build failed (full log: $build_log)"
  fi
  log "sandbox image: built $SANDBOX_IMAGE in Docker ($DOCKER_HOST) in $((SECONDS - t0)) s ($(dockercli image inspect --format '{{.Id}}' "$SANDBOX_IMAGE" | sed 's/^sha256://' | cut -c1-12))"
  dockercli image prune -f --filter "label=pomodex.sandbox.base" >/dev/null 2>&1 || true
  exit 0
fi
# --format docker: the OCI format has no HEALTHCHECK, Podman would drop it.
if ! podman build --format docker --pull=never \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --label "pomodex.sandbox.context=$context_hash" \
  --label "pomodex.sandbox.base=$BASE_IMAGE" \
  -t "$SANDBOX_IMAGE" "$context" >"$build_log" 2>&1 </dev/null; then
  tail -n 30 "$build_log" >&2
  die "podman build failed (full log: $build_log)"
fi
log "sandbox image: built $SANDBOX_IMAGE in $((SECONDS - t0)) s ($(podman image inspect --format '{{.Id}}' "$SANDBOX_IMAGE" | cut -c1-12))"
# Drop the previous build's image if it lost its tag (keeps the store small).
podman image prune -f --filter "label=pomodex.sandbox.base" >/dev/null 2>&1 || true
