#!/usr/bin/env bash
# Builds the Pomodex sandbox image with Podman, without any image registry:
#   1. if missing, makes a local Debian base image from debootstrap
#      (localhost/debian-base:bookworm) that already holds every package in
#      sandbox/packages.txt, so the Dockerfile's install step is skipped;
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
set -euo pipefail

SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pomodex-sandbox:latest}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-base:bookworm}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
BUILD_TMPDIR="${BUILD_TMPDIR:-/var/tmp}"

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
command -v podman >/dev/null || die "podman is not installed: run scripts/setup-engine.sh first"

# Content hash of the build context: an image built from other files is stale.
context_hash="$(cd "$context" && find . -type f -print0 | LC_ALL=C sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-64)"

image_label() {
  podman image inspect --format "{{ index .Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------ base ----
rootfs=""
cleanup() {
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

if ((rebuild_base == 0)) && podman image exists "$BASE_IMAGE"; then
  log "base image: $BASE_IMAGE already present"
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
  tar --numeric-owner -C "$rootfs" -c . |
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' \
      - "$BASE_IMAGE" >/dev/null
  log "base image: imported $BASE_IMAGE in $((SECONDS - t0)) s"
  cleanup
  rootfs=""
fi

# --------------------------------------------------------------- sandbox ----
if ((force == 0)) && podman image exists "$SANDBOX_IMAGE"; then
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
