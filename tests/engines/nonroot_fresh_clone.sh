#!/usr/bin/env bash
# nonroot_fresh_clone.sh [SOURCE]: the README's first command from a fresh clone, as a workshop laptop's user:
# non-root, in the `docker` group, behind a TLS proxy whose CA only ~/.config/pip/pip.conf names (`cert =`),
# with no CA variable exported (no PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, EMULATE_EXTRA_CA_BUNDLE).
# Then a short walk: status, launch a notebook, delete it, down. Run as root (it creates the user
# skaha-laptop and removes it at the end; KEEP_USER=1 keeps it). SOURCE: what to clone (default: this
# checkout, its committed HEAD). Note: this sandbox's own /etc/pip.conf names the same CA file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_root
SOURCE=${1:-$REPO}
USER_NAME=${NONROOT_USER:-skaha-laptop}
INSTANCE=nonroot
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

if ! id "$USER_NAME" >/dev/null 2>&1; then useradd -m -s /bin/bash -G docker "$USER_NAME"; fi
home=$(getent passwd "$USER_NAME" | cut -d: -f6)

# A login shell's environment and nothing of root's: no CA variable reaches `make`.
as_user() {
  runuser -u "$USER_NAME" -- env -i HOME="$home" USER="$USER_NAME" LOGNAME="$USER_NAME" \
    PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 EMULATE_INSTANCE="$INSTANCE" EMULATE_PORT="$PORT" \
    bash -c "$1"
}

cleanup() {
  as_user 'cd ~/skaha-emulator 2>/dev/null && [ -x .venv/bin/emulate ] && .venv/bin/emulate down --remove-sessions' || true
  if [ "${KEEP_USER:-}" != 1 ]; then
    userdel -r "$USER_NAME" 2>/dev/null || true
  fi
}
trap cleanup EXIT

rm -rf "$home/skaha-emulator"
# The source checkout is root's: cloned by root (git refuses another user's repository), then given to the user.
git clone -q "$SOURCE" "$home/skaha-emulator"
chown -R "$USER_NAME:$USER_NAME" "$home/skaha-emulator"
as_user 'mkdir -p ~/.config/pip && printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > ~/.config/pip/pip.conf'

begin=$SECONDS
as_user 'cd ~/skaha-emulator && env | grep -E "^(PIP_CERT|REQUESTS_CA_BUNDLE|SSL_CERT_FILE|EMULATE_EXTRA_CA_BUNDLE)=" && exit 1; make up'
say "make up as $USER_NAME: $((SECONDS - begin))s"
as_user 'set -e; cd ~/skaha-emulator; e=.venv/bin/emulate
  said=$($e status); echo "$said"; grep -q "127.0.0.1:$EMULATE_PORT" <<<"$said"
  id=$($e launch notebook --timeout 180 | awk "NR==1 {print \$1}")
  $e ps | grep -q "$id"
  $e delete "$id"
  $e down --remove-sessions'
say "fresh clone as $USER_NAME: make up and the walk passed in $((SECONDS - begin))s"
