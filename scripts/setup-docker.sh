#!/usr/bin/env bash
# Sets up a second container engine for Pomodex on a Debian 12 host, as root:
# real Docker (Debian's docker.io, moby 20.10, API 1.41) beside Podman, so
# that the tests can run against both engines.
#   - installs docker.io (with containerd, runc, tini) if missing;
#   - starts its own dockerd, on its own socket and paths, with user
#     namespaces remapped (root in a container is an unprivileged host uid),
#     and checks that they are;
#   - builds the sandbox image (localhost/pomodex-sandbox:latest) in it with
#     scripts/build-sandbox-image.sh (ENGINE=docker), from the same debootstrap
#     base as Podman's;
#   - checks that the local registry (scripts/setup-engine.sh starts it) can
#     be pushed to: Docker treats 127.0.0.0/8 registries as insecure (plain
#     HTTP) by default, and localhost resolves there.
#
# The daemon:
#   dockerd --host unix:///run/docker-test.sock --data-root /var/lib/docker-test
#     --exec-root /run/docker-test --pidfile /run/docker-test.pid
#     --storage-driver overlay2 --userns-remap=default
#     --ip-forward=false --config-file /etc/pomodex/docker-test.json
# started detached (setsid, stdin from /dev/null, output to
# /var/log/pomodex/docker-test.log). It runs its own containerd (under the
# exec root), so a system Docker or containerd is not needed and not touched.
# Networking: --iptables stays on (the default): Docker adds its own chains
# (DOCKER, DOCKER-USER, DOCKER-ISOLATION-*) and, per bridge, rules that match
# only its own interfaces, plus a MASQUERADE for each bridge subnet; without
# that NAT a container could reach neither the host's resolver (Docker's
# embedded DNS forwards from inside the container's network namespace) nor
# anything else off the host. Podman's NETAVARK_* chains are left alone.
# --ip-forward=false: this script turns net.ipv4.ip_forward on itself
# (as netavark does); when Docker does it, it also sets the FORWARD policy to
# DROP, which would cut forwarding for everything else on the host (Podman's
# containers included). Published ports on 127.0.0.1 go through docker-proxy.
# Only one dockerd with iptables on should run on a host: two would both own
# the DOCKER chains. The script warns if it sees another one.
#
# Idempotent: when everything is in place it changes nothing and returns in
# a few seconds. A daemon this script started is restarted when its flags or
# config file changed since; one started by someone else is left alone (but
# the script fails if it has no user namespace remapping).
#
# Usage: scripts/setup-docker.sh [--no-image]
#   --no-image   do not build the sandbox image
# Environment overrides:
#   DOCKER_TEST_SOCKET   socket of the Docker API      (/run/docker-test.sock)
#   DOCKER_DATA_ROOT     dockerd --data-root           (/var/lib/docker-test)
#   DOCKER_EXEC_ROOT     dockerd --exec-root           (/run/docker-test)
#   DOCKER_DAEMON_PIDFILE  dockerd --pidfile           (/run/docker-test.pid)
#   DOCKER_DAEMON_CONFIG dockerd --config-file it writes (/etc/pomodex/docker-test.json)
#   REGISTRY_ADDR        host:port of the local registry (127.0.0.1:5000)
#   SANDBOX_IMAGE, BASE_IMAGE  passed on to scripts/build-sandbox-image.sh
#   POMODEX_LOG_DIR      where the daemon log goes     (/var/log/pomodex)
#   ENGINE_WAIT_SECONDS  how long to wait for the daemon to answer (30)
# Afterwards: export DOCKER_HOST=unix:///run/docker-test.sock
set -euo pipefail

DOCKER_TEST_SOCKET="${DOCKER_TEST_SOCKET:-/run/docker-test.sock}"
DOCKER_DATA_ROOT="${DOCKER_DATA_ROOT:-/var/lib/docker-test}"
DOCKER_EXEC_ROOT="${DOCKER_EXEC_ROOT:-/run/docker-test}"
DOCKER_DAEMON_PIDFILE="${DOCKER_DAEMON_PIDFILE:-/run/docker-test.pid}"
DOCKER_DAEMON_CONFIG="${DOCKER_DAEMON_CONFIG:-/etc/pomodex/docker-test.json}"
REGISTRY_ADDR="${REGISTRY_ADDR:-127.0.0.1:5000}"
SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pomodex-sandbox:latest}"
POMODEX_LOG_DIR="${POMODEX_LOG_DIR:-/var/log/pomodex}"
ENGINE_WAIT_SECONDS="${ENGINE_WAIT_SECONDS:-30}"

STATE_DIR=/run/pomodex
# Debian's client, the daemon's own version. (/usr/local/bin/docker, when
# present, comes first on PATH; every call here names the socket anyway.)
DOCKER_CLI=/usr/bin/docker

PACKAGES=(docker.io containerd runc tini iptables curl)

build_image=1
for arg in "$@"; do
  case "$arg" in
  --no-image) build_image=0 ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "setup-docker: unknown argument: $arg" >&2
    exit 2
    ;;
  esac
done

log() { printf '%s\n' "$*"; }
die() {
  printf 'setup-docker: error: %s\n' "$*" >&2
  exit 1
}

[[ "$(id -u)" == 0 ]] || die "run as root (installs packages, starts dockerd)"
[[ "$DOCKER_TEST_SOCKET" == /* ]] || die "DOCKER_TEST_SOCKET must be an absolute path, got '$DOCKER_TEST_SOCKET'"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

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
  # No recommends (apparmor, git, needrestart, ...): not needed to run it.
  # Without systemd the package's own start of the service is refused or
  # fails; that is expected, this script starts dockerd itself below.
  apt_log="$(mktemp)"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    rm -f "$apt_log"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$apt_log"
  log "packages: installed ${missing[*]}"
fi
[[ -x "$DOCKER_CLI" ]] || die "$DOCKER_CLI is missing although docker.io is installed"
dockercli() { "$DOCKER_CLI" --host "unix://$DOCKER_TEST_SOCKET" "$@"; }

# -------------------------------------------------------------- forwarding --
# Containers reach the host's resolver and anything off the host through
# forwarding and NAT. dockerd runs with --ip-forward=false (see the top).
if [[ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]]; then
  echo 1 >/proc/sys/net/ipv4/ip_forward || die "cannot enable net.ipv4.ip_forward"
  log "sysctl: net.ipv4.ip_forward turned on"
fi

# ------------------------------------------------------------ daemon config --
# dockerd reads /etc/docker/daemon.json unless told otherwise; a file there
# meant for a system Docker must not change (or, with "hosts", break) this
# one. Every setting is a flag below, so the file is empty.
write_if_changed() {
  local path="$1" content="$2"
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path"
}
write_if_changed "$DOCKER_DAEMON_CONFIG" "{}" || true

DOCKERD_ARGS=(
  --host "unix://$DOCKER_TEST_SOCKET"
  --data-root "$DOCKER_DATA_ROOT"
  --exec-root "$DOCKER_EXEC_ROOT"
  --pidfile "$DOCKER_DAEMON_PIDFILE"
  --config-file "$DOCKER_DAEMON_CONFIG"
  --storage-driver overlay2
  --userns-remap=default
  --ip-forward=false
)

mkdir -p "$STATE_DIR" "$POMODEX_LOG_DIR"
state_key() { printf '%s' "$1" | tr -c 'A-Za-z0-9.-' '_'; }
OUR_PIDFILE="$STATE_DIR/dockerd.$(state_key "$DOCKER_TEST_SOCKET").pid"
STAMP="$OUR_PIDFILE.config"
DOCKERD_LOG="$POMODEX_LOG_DIR/docker-test.log"
config_hash="$(printf '%s\n' "${DOCKERD_ARGS[@]}" | cat - "$DOCKER_DAEMON_CONFIG" | sha256sum | cut -c1-64)"

docker_ping() {
  curl -sf --max-time 2 --unix-socket "$DOCKER_TEST_SOCKET" http://d/_ping
}

# Wait until "$@" succeeds, at most ENGINE_WAIT_SECONDS.
wait_for() {
  local what="$1" logfile="$2"
  shift 2
  local deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf 'setup-docker: error: %s did not answer within %ss; last lines of %s:\n' \
        "$what" "$ENGINE_WAIT_SECONDS" "$logfile" >&2
      tail -n 20 "$logfile" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

# Whether pid $1 is alive: a zombie (killed, not yet reaped, which can take
# a while when the host's init is slow to reap) counts as gone.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# The pid in pidfile if it is alive and runs the given program; else fails.
live_pid() {
  local pidfile="$1" prog="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$prog" || return 1
  echo "$pid"
}

# Start "$@" as a daemon: own session (setsid), stdin from /dev/null, output
# appended to LOGFILE, and every other inherited descriptor closed, so that
# nothing (a CI runner's output pipe, say) stays open because of it.
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

start_dockerd() {
  local pid deadline
  mkdir -p "$(dirname "$DOCKER_TEST_SOCKET")"
  # A socket file nobody answers on is stale (daemon killed uncleanly), and
  # so is dockerd's own pid file then: dockerd refuses to start while its
  # pid still shows in /proc (a zombie does).
  # The same goes for the containerd it runs (its pid file is in the exec
  # root): dockerd would wait for a dead one to answer, then give up.
  if [[ -S "$DOCKER_TEST_SOCKET" ]]; then rm -f "$DOCKER_TEST_SOCKET"; fi
  rm -f "$DOCKER_DAEMON_PIDFILE"
  local ctr_pidfile="$DOCKER_EXEC_ROOT/containerd/containerd.pid" ctr_pid
  if [[ -f "$ctr_pidfile" ]]; then
    ctr_pid="$(cat "$ctr_pidfile")"
    if ! [[ "$ctr_pid" =~ ^[0-9]+$ ]] || ! alive "$ctr_pid"; then rm -f "$ctr_pidfile"; fi
  fi
  spawn_detached "$DOCKERD_LOG" "$OUR_PIDFILE" dockerd "${DOCKERD_ARGS[@]}"
  pid="$(cat "$OUR_PIDFILE")"
  deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
  until docker_ping >/dev/null 2>&1; do
    if ! alive "$pid" || ((SECONDS >= deadline)); then
      if alive "$pid"; then
        printf 'setup-docker: error: dockerd (pid %s) did not answer on %s within %ss; last lines of %s:\n' \
          "$pid" "$DOCKER_TEST_SOCKET" "$ENGINE_WAIT_SECONDS" "$DOCKERD_LOG" >&2
      else
        printf 'setup-docker: error: dockerd exited at start; last lines of %s:\n' "$DOCKERD_LOG" >&2
      fi
      tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  echo "$config_hash" >"$STAMP"
}

stop_our_dockerd() {
  local pid="$1" deadline
  kill "$pid"
  # dockerd stops its containers first (up to 15 s each, in parallel).
  deadline=$((SECONDS + ENGINE_WAIT_SECONDS + 15))
  while alive "$pid"; do
    ((SECONDS < deadline)) || die "dockerd (pid $pid) did not stop within $((ENGINE_WAIT_SECONDS + 15))s"
    sleep 0.2
  done
}

# Another dockerd on this host (a system Docker, or one on another socket)
# would share the DOCKER iptables chains with ours.
for p in /proc/[0-9]*; do
  [[ -r "$p/comm" && "$(cat "$p/comm" 2>/dev/null)" == dockerd ]] || continue
  alive "${p#/proc/}" || continue
  cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null || true)"
  if [[ "$cmd" != *"unix://$DOCKER_TEST_SOCKET"* ]]; then
    log "dockerd: WARNING: another dockerd runs (pid ${p#/proc/}: $cmd); both manage the DOCKER iptables chains"
  fi
done

# -------------------------------------------------------------- the daemon --
if docker_ping >/dev/null 2>&1; then
  if pid="$(live_pid "$OUR_PIDFILE" dockerd)"; then
    if [[ "$(cat "$STAMP" 2>/dev/null)" == "$config_hash" ]]; then
      log "dockerd: already running at unix://$DOCKER_TEST_SOCKET (pid $pid)"
    else
      stop_our_dockerd "$pid"
      start_dockerd
      log "dockerd: restarted at unix://$DOCKER_TEST_SOCKET with changed flags (pid $(cat "$OUR_PIDFILE"), log $DOCKERD_LOG)"
    fi
  else
    log "dockerd: already running at unix://$DOCKER_TEST_SOCKET (not started by this script; left as it is)"
  fi
elif pid="$(live_pid "$DOCKER_DAEMON_PIDFILE" dockerd)"; then
  # Still starting (or hung): never start a second one on the same paths.
  log "dockerd: pid $pid is starting; waiting for unix://$DOCKER_TEST_SOCKET ..."
  wait_for "dockerd (pid $pid, $DOCKER_TEST_SOCKET)" "$DOCKERD_LOG" docker_ping
  log "dockerd: running at unix://$DOCKER_TEST_SOCKET (pid $pid)"
else
  start_dockerd
  log "dockerd: started at unix://$DOCKER_TEST_SOCKET (pid $(cat "$OUR_PIDFILE"), log $DOCKERD_LOG)"
fi

# ---------------------------------------------------------- user namespaces --
# GET /info lists "name=userns" in SecurityOptions when remapping is on.
info="$(curl -sf --max-time 5 --unix-socket "$DOCKER_TEST_SOCKET" http://d/v1.41/info)" ||
  die "GET /v1.41/info failed on $DOCKER_TEST_SOCKET"
[[ "$info" == *'"name=userns"'* ]] ||
  die "the daemon on $DOCKER_TEST_SOCKET runs without user namespace remapping (no name=userns in SecurityOptions); restart it with --userns-remap=default"
remap="$(grep -m1 '^dockremap:' /etc/subuid || true)"
[[ -n "$remap" ]] || die "no dockremap range in /etc/subuid although the daemon remaps user namespaces"
log "userns: on (SecurityOptions name=userns); root in containers is host uid ${remap#dockremap:} (/etc/subuid)"

# ---------------------------------------------------------------- registry --
registry_host="${REGISTRY_ADDR%:*}"
case "$registry_host" in
localhost | 127.*)
  [[ "$info" == *'"127.0.0.0/8"'* ]] ||
    log "registry: WARNING: the daemon does not list 127.0.0.0/8 as an insecure registry range; pushes to $REGISTRY_ADDR will want TLS"
  ;;
*) log "registry: WARNING: $REGISTRY_ADDR is not on loopback; Docker wants TLS for it (add --insecure-registry to DOCKERD_ARGS)" ;;
esac
if curl -sf --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
  log "registry: http://$REGISTRY_ADDR answers; Docker pushes to localhost:${REGISTRY_ADDR##*:} over plain HTTP (127.0.0.0/8 is insecure by default)"
else
  log "registry: WARNING: nothing answers at http://$REGISTRY_ADDR (scripts/setup-engine.sh starts it)"
fi

# ----------------------------------------------------------- sandbox image --
if ((build_image)); then
  ENGINE=docker DOCKER_HOST="unix://$DOCKER_TEST_SOCKET" DOCKER_CLI="$DOCKER_CLI" \
    SANDBOX_IMAGE="$SANDBOX_IMAGE" bash "$repo_root/scripts/build-sandbox-image.sh"

  # Root in a container must not be host root: the full identity map
  # ("0 0 4294967295") would mean no remapping.
  uid_map="$(dockercli run --rm --network none --entrypoint cat "$SANDBOX_IMAGE" /proc/self/uid_map 2>&1)" ||
    die "could not run a container of $SANDBOX_IMAGE: $uid_map"
  read -r inner outer size <<<"$uid_map"
  if [[ "$inner" != 0 || "$outer" == 0 ]]; then
    die "containers are not remapped: /proc/self/uid_map in a container reads '$uid_map'"
  fi
  log "userns: checked in a container: uid_map '$inner $outer $size'"
fi

log "docker: ready; export DOCKER_HOST=unix://$DOCKER_TEST_SOCKET"
