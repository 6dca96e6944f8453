#!/usr/bin/env bash
# stop.sh ENGINE [--keep-images]: undo start.sh ENGINE, so that a rerun starts from nothing: stop the engine
# it started (one it found running is left alone), remove the user it created with that user's home
# (their engine's storage and venv go with it) and the images it loaded into rootful Podman.
# The wheelhouse in /var/cache/skaha-engines is kept: it only makes the next run quicker.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ENGINE=${1:-}
KEEP_IMAGES=${2:-}
known_engine "$ENGINE"
need_root
dir=$STATE/$ENGINE
[ -d "$dir" ] || { say "$ENGINE: nothing of start.sh's to stop"; exit 0; }

stop_group() {  # the process group start.sh began (the engine and the runuser above it)
  local pgid
  [ -f "$dir/pgid" ] || return 0
  pgid=$(cat "$dir/pgid")
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  rm -f "$dir/pgid"
}

# A user start.sh created: what the engine left running under that uid (conmon, Podman's pause
# process, slirp4netns), each by its id, then the user and their home.
remove_user() {
  local user uid pids
  [ -f "$dir/made-user" ] || return 0
  user=$(cat "$dir/made-user")
  uid=$(user_uid "$user") || return 0
  for signal in TERM KILL; do
    pids=$(pgrep -u "$uid" || true)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill "-$signal" $pids 2>/dev/null || true
    sleep 2
  done
  # Overlay mounts of the user's engine still inside the home would make its removal fail half-way.
  grep -o " $(getent passwd "$user" | cut -d: -f6)/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  userdel -r "$user" 2>/dev/null || userdel "$user"
  rm -rf "/run/user/$uid" "/tmp/pytest-of-$user"
  say "removed user $user"
}

if [ "$ENGINE" = podman ] && [ -f "$dir/loaded-images" ] && [ "$KEEP_IMAGES" != --keep-images ] && answers /run/podman/podman.sock; then
  sort -u "$dir/loaded-images" | xargs -r env DOCKER_HOST=unix:///run/podman/podman.sock docker rmi >/dev/null 2>&1 || true
fi
stop_group
remove_user
[ "$ENGINE" = podman ] && [ ! -e "$dir/made-user" ] && ! answers /run/podman/podman.sock && rm -f /run/podman/podman.sock
rm -rf "$dir"
say "$ENGINE stopped"
