#!/bin/sh
# Entrypoint of a Pomodex sandbox: installs the platform's public key for user
# "agent", makes sure the home volume is usable, then runs sshd in the
# foreground as PID 1. Runs as root only to start sshd.
set -eu

AGENT_USER=agent
AGENT_HOME=/home/agent

die() {
  echo "pomodex-sandbox: $*" >&2
  exit 1
}

if [ -z "${SSH_PUBLIC_KEY:-}" ]; then
  die "SSH_PUBLIC_KEY is empty: set it to the OpenSSH public key allowed to log in as $AGENT_USER"
fi

# Host keys: made once per container (none are baked into the image); they
# then live in the container filesystem and survive commit/restore.
# ed25519 and ECDSA only: an RSA key (what `ssh-keygen -A` would add) takes
# 0.5-2 s to generate here and would delay the first login by that much.
for type in ed25519 ecdsa; do
  key="/etc/ssh/ssh_host_${type}_key"
  if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t "$type" -N '' -C "root@pomodex-sandbox" -f "$key" </dev/null
  fi
done

# Home: a fresh workspace file system is empty but for lost+found, which belongs to the
# host's root and cannot be read from here (a user namespace maps root elsewhere).
home_is_empty() {
  for f in "$AGENT_HOME"/* "$AGENT_HOME"/.[!.]* "$AGENT_HOME"/..?*; do
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then continue; fi
    if [ "$f" = "$AGENT_HOME/lost+found" ]; then continue; fi
    return 1
  done
  return 0
}
mkdir -p "$AGENT_HOME"
if home_is_empty; then
  for f in /etc/skel/.[!.]* /etc/skel/*; do
    [ -e "$f" ] || continue
    cp -a "$f" "$AGENT_HOME"/
    chown -R "$AGENT_USER:$AGENT_USER" "$AGENT_HOME/${f##*/}"
  done
fi
chown "$AGENT_USER:$AGENT_USER" "$AGENT_HOME"

# The key the platform holds is the only one: authorized_keys is rewritten at
# every start. The home belongs to the user, so replace rather than follow
# whatever .ssh or authorized_keys is there (it could be a symlink).
ssh_dir="$AGENT_HOME/.ssh"
if [ -L "$ssh_dir" ] || { [ -e "$ssh_dir" ] && [ ! -d "$ssh_dir" ]; }; then
  rm -f "$ssh_dir"
fi
mkdir -p "$ssh_dir"
chown "$AGENT_USER:$AGENT_USER" "$ssh_dir"
chmod 700 "$ssh_dir"
tmp="$ssh_dir/.authorized_keys.$$"
rm -f "$tmp"
printf '%s\n' "$SSH_PUBLIC_KEY" >"$tmp"
chown "$AGENT_USER:$AGENT_USER" "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$ssh_dir/authorized_keys"
unset SSH_PUBLIC_KEY

# Egress: the platform's proxy on this sandbox's gateway (none when it runs without one).
# sshd starts sessions with an environment of its own, and sudo drops the variables, so the
# proxy is also written where SSH sessions, login shells and apt read it.
proxy_conf=/etc/ssh/sshd_config.d/pomodex-proxy.conf
apt_conf=/etc/apt/apt.conf.d/80pomodex-proxy
profile=/etc/profile.d/pomodex-proxy.sh
if [ -n "${POMODEX_EGRESS_PROXY:-}" ]; then
  p="$POMODEX_EGRESS_PROXY"
  no="localhost,127.0.0.1,::1"
  mkdir -p /etc/ssh/sshd_config.d /etc/apt/apt.conf.d /etc/profile.d
  echo "SetEnv LANG=C.UTF-8 http_proxy=$p https_proxy=$p HTTP_PROXY=$p HTTPS_PROXY=$p no_proxy=$no NO_PROXY=$no" >"$proxy_conf"
  printf 'Acquire::http::Proxy "%s";\nAcquire::https::Proxy "%s";\n' "$p" "$p" >"$apt_conf"
  printf 'export http_proxy=%s https_proxy=%s HTTP_PROXY=%s HTTPS_PROXY=%s no_proxy=%s NO_PROXY=%s\n' \
    "$p" "$p" "$p" "$p" "$no" "$no" >"$profile"
else
  rm -f "$proxy_conf" "$apt_conf" "$profile"
fi

mkdir -p /run/sshd
chmod 755 /run/sshd

exec /usr/sbin/sshd -D -e
