#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 and that user
# postgres can connect there over TCP without a password, then prints the
# URL tests can use. Debian 12, as root. Idempotent:
#   - already answering: changes nothing (unless password-less TCP login as
#     postgres fails, see below);
#   - installed but stopped: starts the cluster(s) with pg_ctlcluster;
#   - not installed: apt-get install postgresql, then starts it.
# If password-less login fails, a `trust` rule for 127.0.0.1/32 and ::1/128 is
# put at the top of pg_hba.conf and the server reloaded. That is for a
# throw-away test machine only: never run this against a server you care for.
#
# Environment: POSTGRES_PORT (5432), POSTGRES_WAIT_SECONDS (30).
set -euo pipefail

PORT="${POSTGRES_PORT:-5432}"
WAIT="${POSTGRES_WAIT_SECONDS:-30}"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
LOG=/var/log/pomodex/ensure-postgres.log

log() { printf '%s\n' "$*"; }
die() {
  printf 'ensure-postgres: error: %s\n' "$*" >&2
  exit 1
}

answers() { pg_isready -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1; }
login_ok() { psql -w -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }

# Run "$@" with stdin from /dev/null, output to $LOG and every inherited
# descriptor above 2 closed, so the server it starts holds nothing of ours
# (a CI runner waits for its output pipe to close).
run_detached_io() {
  mkdir -p "$(dirname "$LOG")"
  (
    for f in /proc/"$BASHPID"/fd/*; do
      fd="${f##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
  ) >>"$LOG" 2>&1 </dev/null
}

if command -v pg_isready >/dev/null && answers; then
  log "postgres: already running on 127.0.0.1:$PORT"
else
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not running on 127.0.0.1:$PORT; run as root to install/start it"
  if ! command -v pg_lsclusters >/dev/null || ! compgen -G '/etc/postgresql/*/*/postgresql.conf' >/dev/null; then
    log "postgres: installing (apt-get install postgresql) ..."
    export DEBIAN_FRONTEND=noninteractive
    run_detached_io apt-get update -qq
    run_detached_io apt-get install -y -qq postgresql || die "apt-get install postgresql failed (log: $LOG)"
    log "postgres: installed"
  fi
  # Start the cluster configured for our port (the package may already have
  # started it through its init script).
  found=0
  while read -r version cluster port status _; do
    [[ "$port" == "$PORT" ]] || continue
    found=1
    [[ "$status" == online* ]] && continue
    run_detached_io pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start ||
      die "pg_ctlcluster $version $cluster start failed (log: $LOG; server log under /var/log/postgresql)"
    log "postgres: started cluster $version/$cluster"
  done < <(pg_lsclusters -h)
  ((found)) || die "no PostgreSQL cluster is configured for port $PORT (pg_lsclusters)"
  deadline=$((SECONDS + WAIT))
  until answers; do
    ((SECONDS < deadline)) || die "PostgreSQL does not answer on 127.0.0.1:$PORT after ${WAIT}s (see /var/log/postgresql)"
    sleep 0.2
  done
  log "postgres: running on 127.0.0.1:$PORT"
fi

if login_ok; then
  log "postgres: password-less login as postgres over TCP works"
else
  [[ "$(id -u)" == 0 ]] || die "cannot log in as postgres on 127.0.0.1:$PORT without a password; run as root to allow it"
  # The cluster that listens on our port.
  hba="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p {print "/etc/postgresql/" $1 "/" $2 "/pg_hba.conf"; exit}')"
  [[ -n "$hba" && -f "$hba" ]] || die "cannot log in as postgres on 127.0.0.1:$PORT and found no pg_hba.conf for that port"
  if ! grep -q '^# pomodex: trust local TCP' "$hba"; then
    cp -p "$hba" "$hba.pomodex.bak"
    {
      echo '# pomodex: trust local TCP (added by scripts/ensure-postgres.sh; test machines only)'
      echo 'host all all 127.0.0.1/32 trust'
      echo 'host all all ::1/128 trust'
      cat "$hba.pomodex.bak"
    } >"$hba"
  fi
  read -r version cluster _ < <(pg_lsclusters -h | awk -v p="$PORT" '$3 == p')
  run_detached_io pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
  login_ok || die "still cannot log in as postgres on 127.0.0.1:$PORT without a password (see $hba)"
  log "postgres: allowed password-less TCP login from localhost in $hba (backup: $hba.pomodex.bak)"
fi

log "DATABASE_URL=$URL"
