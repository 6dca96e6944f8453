#!/usr/bin/env bash
# start.sh ENGINE: start one container engine (idempotently, as root), put the images the core path needs
# into it, and print the DOCKER_HOST to reach it (the only line on stdout; progress goes to stderr).
#   docker           rootful Docker, already running (nothing started; images are its own)
#   podman           rootful Podman's API service at unix:///run/podman/podman.sock
#   podman-rootless  Podman's API service as user skaha-podman
#   docker-rootless  dockerd-rootless.sh as user skaha-dockerd
# stop.sh ENGINE undoes what this made. An engine already answering on its socket is used as it is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ENGINE=${1:-}
known_engine "$ENGINE"
need_root
mkdir -p "$STATE/$ENGINE"

wait_for() {  # SOCKET LOG: until the engine answers (90 s), or fail with its log's tail
  for _ in $(seq 1 90); do answers "$1" && return 0; sleep 1; done
  tail -20 "$2" >&2
  die "$ENGINE did not answer on $1 within 90 s (its log: $2)"
}

# An unprivileged user of its own for a rootless engine: home, subordinate ids, /run/user/<uid>.
make_user() {
  local user=$1 uid run next
  if ! id "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$user"
    echo "$user" >"$STATE/$ENGINE/made-user"
  fi
  for file in /etc/subuid /etc/subgid; do  # Debian's useradd adds them; other hosts may not
    if ! grep -q "^$user:" "$file"; then
      next=$(awk -F: '{ end = $2 + $3; if (end > max) max = end } END { print (max ? max : 100000) }' "$file")
      usermod "--add-sub${file#/etc/sub}s" "$next-$((next + 65535))" "$user"
    fi
  done
  uid=$(user_uid "$user")
  run=/run/user/$uid
  mkdir -p "$run" && chown "$user:$user" "$run" && chmod 0700 "$run"
}

# Run a command as USER in the login environment a rootless engine expects (and nothing of root's).
as_user() {
  local user=$1; shift
  local uid home
  uid=$(user_uid "$user"); home=$(getent passwd "$user" | cut -d: -f6)
  runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="/run/user/$uid" "$@"
}

start_podman() {
  local conf=$STATE/podman/containers.conf log=$STATE/podman/service.log
  # This sandbox's limit, not the product's: root here lacks cap_sys_resource, and rootful Podman raises
  # RLIMIT_NOFILE/NPROC above the hard limits, so runc fails every container ("error setting rlimit
  # type 7"). Asking for limits within the hard ones avoids it; on a normal host this file is harmless.
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
CONF
  mkdir -p /run/podman
  CONTAINERS_CONF=$conf setsid podman system service --time=0 unix:///run/podman/podman.sock \
    >"$log" 2>&1 </dev/null &
  echo $! >"$STATE/podman/pgid"
  wait_for /run/podman/podman.sock "$log"
}

start_podman_rootless() {
  local user home log=$STATE/$ENGINE/service.log sock
  user=$(engine_user "$ENGINE"); make_user "$user"
  home=$(getent passwd "$user" | cut -d: -f6); sock=$(engine_socket "$ENGINE")
  # Debian's Podman picks vfs (a full copy per layer) without this.
  as_user "$user" mkdir -p "$home/.config/containers" "$(dirname "$sock")"
  printf '[storage]\ndriver = "overlay"\n' | as_user "$user" tee "$home/.config/containers/storage.conf" >/dev/null
  touch "$log" && chown "$user" "$log"
  setsid runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" PATH=/usr/bin:/bin \
    XDG_RUNTIME_DIR="$(dirname "$(dirname "$sock")")" podman system service --time=0 "unix://$sock" \
    >"$log" 2>&1 </dev/null &
  echo $! >"$STATE/$ENGINE/pgid"
  wait_for "$sock" "$log"
}

start_docker_rootless() {
  local user home log=$STATE/$ENGINE/dockerd.log sock
  user=$(engine_user "$ENGINE"); make_user "$user"
  home=$(getent passwd "$user" | cut -d: -f6); sock=$(engine_socket "$ENGINE")
  touch "$log" && chown "$user" "$log"
  setsid runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin XDG_RUNTIME_DIR="$(dirname "$sock")" \
    /usr/share/docker.io/contrib/dockerd-rootless.sh >"$log" 2>&1 </dev/null &
  echo $! >"$STATE/$ENGINE/pgid"
  wait_for "$sock" "$log"
}

image_id() { DOCKER_HOST=$1 docker image inspect -f '{{.Id}}' "$2" 2>/dev/null || true; }

# The images on rootful Docker first (where `make images` builds them), then into the engine through its
# own API (`docker load` with DOCKER_HOST at it), skipping those it already holds with the same id.
load_images() {
  local target=$1 wanted=() image missing=()
  for image in "${IMAGES[@]:0:3}"; do [ -n "$(image_id "$ROOTFUL_DOCKER" "$image")" ] || missing+=("${image#skaha-emulator/}"); done
  if ((${#missing[@]})); then
    say "building ${missing[*]} on rootful Docker"
    DOCKER_HOST=$ROOTFUL_DOCKER "$REPO/.venv/bin/emulate" images build "${missing[@]%:latest}" >&2
  fi
  if [ -z "$(image_id "$ROOTFUL_DOCKER" "${IMAGES[3]}")" ]; then
    say "building ${IMAGES[3]} on rootful Docker"
    DOCKER_HOST=$ROOTFUL_DOCKER docker build -q -t "${IMAGES[3]}" "$REPO/tests/images/contract-app" >&2
  fi
  [ "$target" = "$ROOTFUL_DOCKER" ] && return 0
  for image in "${IMAGES[@]}"; do
    [ "$(image_id "$ROOTFUL_DOCKER" "$image")" = "$(image_id "$target" "$image")" ] || wanted+=("$image")
  done
  if ((${#wanted[@]})); then
    say "loading ${wanted[*]} into $ENGINE"
    DOCKER_HOST=$ROOTFUL_DOCKER docker save "${wanted[@]}" | DOCKER_HOST=$target docker load -q >&2
    echo >&2  # Podman's answer ends without a newline
    printf '%s\n' "${wanted[@]}" >>"$STATE/$ENGINE/loaded-images"
  else
    say "$ENGINE already holds every image"
  fi
}

sock=$(engine_socket "$ENGINE" || true)
if [ -n "$sock" ] && answers "$sock"; then
  say "$ENGINE already answers on $sock: using it as it is"
else
  case "$ENGINE" in
    docker) die "rootful Docker does not answer on $sock: start dockerd first" ;;
    podman) start_podman ;;
    podman-rootless) start_podman_rootless ;;
    docker-rootless) start_docker_rootless ;;
  esac
  sock=$(engine_socket "$ENGINE")
  say "$ENGINE answers on $sock"
fi
load_images "unix://$sock"
echo "unix://$sock"
