#!/bin/sh
# Make debian:bookworm-slim without a registry (offline / air-gapped machines):
# debootstrap a minimal bookworm from a Debian mirror and import it into Docker.
#   usage: bootstrap.sh [MIRROR]      (needs root and debootstrap)
set -eu
mirror="${1:-${DEBIAN_MIRROR:-http://deb.debian.org/debian}}"
target="$(mktemp -d /tmp/skaha-emulator-rootfs.XXXXXX)"
trap 'rm -rf "$target"' EXIT
debootstrap --variant=minbase bookworm "$target" "$mirror" >&2
tar -C "$target" -c . | docker import - debian:bookworm-slim
