# Shared by start.sh, stop.sh, run.sh and all.sh: the engines this harness knows, their users and sockets.
# Sourced, not run. Every engine here is started by root (rootless ones as a user of their own).
# shellcheck shell=bash

ENGINES_ALL=(podman podman-rootless docker-rootless)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=/run/skaha-engines            # pids, logs and what start.sh made, per engine (gone at reboot)
CACHE=/var/cache/skaha-engines      # kept across runs: the wheelhouse the rootless users' venvs install from
# What the core path needs in the engine: the platform, the notebook and the contract-test app
# (tests/images/contract-app, which the CARTA, Firefly and contributed launches use).
IMAGES=(skaha-emulator/service:latest skaha-emulator/gateway:latest skaha-emulator/notebook:latest
        skaha-emulator-test/contract-app:latest)
ROOTFUL_DOCKER=unix:///var/run/docker.sock

die() { echo "engines: $*" >&2; exit 1; }
say() { echo "engines: $*" >&2; }

known_engine() {
  case "${1:-}" in docker|podman|podman-rootless|docker-rootless) ;; *)
    die "unknown engine '${1:-}': one of docker, ${ENGINES_ALL[*]}" ;;
  esac
}

# The unprivileged user a rootless engine runs as (one per engine, so the two never share storage).
engine_user() {
  case "$1" in
    podman-rootless) echo skaha-podman ;;
    docker-rootless) echo skaha-dockerd ;;
    *) echo root ;;
  esac
}

user_uid() { id -u "$1" 2>/dev/null; }

engine_socket() {
  local uid
  case "$1" in
    docker) echo /var/run/docker.sock ;;
    podman) echo /run/podman/podman.sock ;;
    podman-rootless) uid=$(user_uid "$(engine_user "$1")") && echo "/run/user/$uid/podman/podman.sock" ;;
    docker-rootless) uid=$(user_uid "$(engine_user "$1")") && echo "/run/user/$uid/docker.sock" ;;
  esac
}

# Whether an engine answers on a unix socket (its /_ping, which Docker and Podman both serve).
answers() { [ -S "$1" ] && curl -sf --max-time 5 --unix-socket "$1" http://engine/_ping >/dev/null 2>&1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root: it starts engines and creates their users"; }
