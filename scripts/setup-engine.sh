#!/usr/bin/env bash
# Sets up the container engine Pomodex talks to, on a Debian 12 host, as root:
#   - Podman serving the Docker Engine API on a unix socket (runc runtime,
#     netavark networking for published ports),
#   - a local OCI registry (CNCF distribution) on 127.0.0.1:5000 for snapshots,
#   - debootstrap, used by scripts/build-sandbox-image.sh to make a base image.
#
# Idempotent: run it as often as you like. When everything is already up it
# changes nothing and returns in about a second. The daemons it starts are
# detached (setsid, stdin from /dev/null, output to log files), so it is safe
# to call from CI without a terminal.
#
# Environment overrides:
#   PODMAN_SOCKET      socket path for the Docker API   (/run/podman/podman.sock)
#   REGISTRY_ADDR      host:port for the local registry (127.0.0.1:5000)
#   REGISTRY_DATA_DIR  registry storage directory       (/var/lib/pomodex-registry)
#   REGISTRY_CONFIG    registry config file it writes   (/etc/pomodex/registry.yml)
#   POMODEX_LOG_DIR    where daemon logs go             (/var/log/pomodex)
#   ENGINE_WAIT_SECONDS  how long to wait for each daemon to answer (30)
set -euo pipefail

PODMAN_SOCKET="${PODMAN_SOCKET:-/run/podman/podman.sock}"
REGISTRY_ADDR="${REGISTRY_ADDR:-127.0.0.1:5000}"
REGISTRY_DATA_DIR="${REGISTRY_DATA_DIR:-/var/lib/pomodex-registry}"
POMODEX_LOG_DIR="${POMODEX_LOG_DIR:-/var/log/pomodex}"
ENGINE_WAIT_SECONDS="${ENGINE_WAIT_SECONDS:-30}"

CONTAINERS_CONF=/etc/containers/containers.conf
REGISTRIES_CONF=/etc/containers/registries.conf
REGISTRY_CONF="${REGISTRY_CONFIG:-/etc/pomodex/registry.yml}"
STATE_DIR=/run/pomodex
PODMAN_LOG="$POMODEX_LOG_DIR/podman-service.log"
REGISTRY_LOG="$POMODEX_LOG_DIR/registry.log"

# Packages: the engine, its OCI runtime, conmon, networking for published
# ports (netavark + aardvark-dns, which program iptables), the registry,
# debootstrap for the base image, and curl for the health checks here; and
# what keeps tenants apart (docs/ISOLATION.md): nft for the sandbox firewall,
# Squid for the egress proxy, mkfs.ext4 for workspace disks, setpriv.
PACKAGES=(
  podman runc conmon catatonit uidmap
  netavark aardvark-dns iptables
  docker-registry debootstrap curl ca-certificates
  nftables squid e2fsprogs util-linux
)

log() { printf '%s\n' "$*"; }
die() {
  printf 'setup-engine: error: %s\n' "$*" >&2
  exit 1
}

[[ "$(id -u)" == 0 ]] || die "run as root (installs packages, writes /etc/containers, starts daemons)"

registry_port="${REGISTRY_ADDR##*:}"
[[ "$registry_port" =~ ^[0-9]+$ ]] || die "REGISTRY_ADDR must be host:port, got '$REGISTRY_ADDR'"

# ---------------------------------------------------------------- packages --
missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == ii* ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  log "packages: already installed (${PACKAGES[*]})"
else
  log "packages: installing ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Recommends are skipped on purpose: only what is listed above is needed
  # for rootful Podman (buildah, fuse-overlayfs and slirp4netns are for
  # rootless setups). </dev/null keeps apt from ever waiting on a terminal.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  log "packages: installed ${missing[*]}"
fi

# Debian's docker-registry package ships a service with its own config (on
# :5000, with htpasswd auth). Without systemd it is normally not started; if an
# init script started it anyway it would shadow ours: the check below notices
# a registry on our address that this script did not start.

# ------------------------------------------------------- podman configuration
# Write a file only when its content changes; return 0 if it was written.
write_if_changed() {
  local path="$1" content="$2"
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.tmp.$$"
  mv -f "$path.tmp.$$" "$path"
  return 0
}

if [[ -d /run/systemd/system ]]; then
  cgroup_manager="systemd"
  events_logger="journald"
else
  cgroup_manager="cgroupfs"
  events_logger="file"
fi

containers_conf="# Managed by scripts/setup-engine.sh (Pomodex). Edits are overwritten.
[containers]
# The default rlimits cannot be raised inside this kind of host (no
# CAP_SYS_RESOURCE), so containers would fail to start with higher ones.
# nproc counts per uid across the host and every sandbox's agent is uid 1000, so it is
# set high; each sandbox's own process limit is its pids cgroup (SANDBOX_PIDS).
default_ulimits = [\"nofile=1024:1024\", \"nproc=32768:32768\"]

[network]
network_backend = \"netavark\"

[engine]
# crun fails on cgroups hybrid mode here; runc works.
runtime = \"runc\"
cgroup_manager = \"$cgroup_manager\"
events_logger = \"$events_logger\""

config_changed=0
if write_if_changed "$CONTAINERS_CONF" "$containers_conf"; then
  config_changed=1
  log "containers.conf: written ($CONTAINERS_CONF: runtime runc, ulimits nofile 1024 nproc 32768, cgroups $cgroup_manager)"
else
  log "containers.conf: unchanged"
fi

# Insecure (plain HTTP) access to the local registry, under both names that
# reach it; to localhost:5001, where the fault-injection tests run a registry of
# their own that they can stop; and to localhost:5002, where the Google Cloud test
# puts a registry that wants Artifact Registry's credentials. Appended once per
# location; the rest is left alone.
added=()
for location in "localhost:$registry_port" "127.0.0.1:$registry_port" "localhost:5001" "localhost:5002"; do
  if [[ -f "$REGISTRIES_CONF" ]] && grep -Eq "^[[:space:]]*location[[:space:]]*=[[:space:]]*\"$location\"" "$REGISTRIES_CONF"; then
    continue
  fi
  mkdir -p "$(dirname "$REGISTRIES_CONF")"
  printf '\n# Added by scripts/setup-engine.sh (Pomodex): local snapshot registry.\n[[registry]]\nlocation = "%s"\ninsecure = true\n' \
    "$location" >>"$REGISTRIES_CONF"
  added+=("$location")
done
if ((${#added[@]} > 0)); then
  config_changed=1
  log "registries.conf: added insecure registry ${added[*]}"
else
  log "registries.conf: unchanged (localhost:$registry_port already insecure)"
fi

mkdir -p "$STATE_DIR" "$POMODEX_LOG_DIR"

# Wait until "$@" succeeds, at most ENGINE_WAIT_SECONDS.
wait_for() {
  local what="$1" logfile="$2"
  shift 2
  local deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf 'setup-engine: error: %s did not answer within %ss; last lines of %s:\n' \
        "$what" "$ENGINE_WAIT_SECONDS" "$logfile" >&2
      tail -n 20 "$logfile" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

# Wait until "$@" fails (the daemon is gone), at most ENGINE_WAIT_SECONDS.
wait_gone() {
  local deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
  while "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the old daemon did not stop within ${ENGINE_WAIT_SECONDS}s"
    sleep 0.2
  done
}

# The pid in pidfile if it is alive and runs the given program; else fails.
owned_pid() {
  local pidfile="$1" prog="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$prog" || return 1
  echo "$pid"
}

file_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-64; }

# ensure_daemon NAME ADDRESS PING START PIDFILE PROGRAM CONFIG_HASH LOGFILE
# Starts the daemon if PING fails. If it answers, was started by this script
# (PIDFILE) with another configuration than CONFIG_HASH, restarts it: each
# daemon reads its configuration only when it starts.
ensure_daemon() {
  local name="$1" addr="$2" ping="$3" start="$4" pidfile="$5" prog="$6" hash="$7" logfile="$8"
  local stamp="$pidfile.config" pid
  if "$ping" >/dev/null 2>&1; then
    if pid="$(owned_pid "$pidfile" "$prog")"; then
      if [[ "$(cat "$stamp" 2>/dev/null)" == "$hash" ]]; then
        log "$name: already running at $addr"
        return
      fi
      kill "$pid"
      wait_gone "$ping"
      "$start"
      echo "$hash" >"$stamp"
      log "$name: restarted at $addr to load the changed configuration (pid $(cat "$pidfile"), log $logfile)"
      return
    fi
    if ((config_changed)); then
      log "$name: already running at $addr (not started by this script): restart it yourself so it reads the configuration changed above"
    else
      log "$name: already running at $addr"
    fi
    return
  fi
  "$start"
  echo "$hash" >"$stamp"
  log "$name: started at $addr (pid $(cat "$pidfile"), log $logfile)"
}

# Per-address state file names, so a second instance (other socket or port)
# never mistakes the first one's pid for its own.
state_key() { printf '%s' "$1" | tr -c 'A-Za-z0-9.-' '_'; }
PODMAN_PIDFILE="$STATE_DIR/podman-service.$(state_key "$PODMAN_SOCKET").pid"
REGISTRY_PIDFILE="$STATE_DIR/registry.$(state_key "$REGISTRY_ADDR").pid"

# Start "$@" as a daemon: own session (setsid), stdin from /dev/null, output
# appended to LOGFILE, and every other inherited descriptor closed, so that
# nothing (a CI runner's output pipe, say) stays open because of it.
# Its pid goes to PIDFILE.
spawn_detached() {
  local logfile="$1" pidfile="$2"
  shift 2
  (
    for f in /proc/"$BASHPID"/fd/*; do
      fd="${f##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@"
  ) >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

# ----------------------------------------------------------- podman service --
podman_ping() {
  curl -sf --max-time 2 --unix-socket "$PODMAN_SOCKET" http://d/_ping
}

start_podman_service() {
  mkdir -p "$(dirname "$PODMAN_SOCKET")"
  # A socket file nobody answers on is stale (service killed uncleanly).
  if [[ -S "$PODMAN_SOCKET" ]]; then rm -f "$PODMAN_SOCKET"; fi
  spawn_detached "$PODMAN_LOG" "$PODMAN_PIDFILE" podman system service --time=0 "unix://$PODMAN_SOCKET"
  wait_for "podman API ($PODMAN_SOCKET)" "$PODMAN_LOG" podman_ping
}

ensure_daemon "podman API" "unix://$PODMAN_SOCKET" podman_ping start_podman_service \
  "$PODMAN_PIDFILE" "podman system service" \
  "$(file_hash "$CONTAINERS_CONF" "$REGISTRIES_CONF")" "$PODMAN_LOG"

# ----------------------------------------------------------------- registry --
registry_conf="# Managed by scripts/setup-engine.sh (Pomodex). Edits are overwritten.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_DATA_DIR
  # The app deletes snapshot images through the registry HTTP API.
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]"

if write_if_changed "$REGISTRY_CONF" "$registry_conf"; then
  config_changed=1
fi
mkdir -p "$REGISTRY_DATA_DIR"

registry_ping() {
  curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/"
}

start_registry() {
  spawn_detached "$REGISTRY_LOG" "$REGISTRY_PIDFILE" docker-registry serve "$REGISTRY_CONF"
  wait_for "registry (http://$REGISTRY_ADDR)" "$REGISTRY_LOG" registry_ping
}

registry_owned=0
if owned_pid "$REGISTRY_PIDFILE" "docker-registry serve" >/dev/null; then registry_owned=1; fi
ensure_daemon "registry" "http://$REGISTRY_ADDR (storage $REGISTRY_DATA_DIR)" registry_ping start_registry \
  "$REGISTRY_PIDFILE" "docker-registry serve" "$(file_hash "$REGISTRY_CONF")" "$REGISTRY_LOG"

# A registry someone else started may have deletes disabled (405 to a
# manifest DELETE) or want credentials (401); ours answers 404 here. Warn,
# since the app deletes snapshots through the registry API.
if ((registry_owned == 0)) && ! owned_pid "$REGISTRY_PIDFILE" "docker-registry serve" >/dev/null; then
  probe_status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X DELETE \
    "http://$REGISTRY_ADDR/v2/pomodex-probe/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000" || true)"
  case "$probe_status" in
  405) log "registry: WARNING: the registry at $REGISTRY_ADDR has deletes disabled; snapshot deletion will fail" ;;
  401) log "registry: WARNING: the registry at $REGISTRY_ADDR wants credentials (set REGISTRY_USERNAME/REGISTRY_PASSWORD for the app)" ;;
  esac
fi
