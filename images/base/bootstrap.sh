#!/bin/sh
# Make the root filesystem of debian:bookworm-slim without a registry (offline / air-gapped machines): a
# minimal bookworm from a Debian mirror, as a tarball that `emulate images build` imports through the
# engine's API (no docker CLI needed).
#   usage: bootstrap.sh OUT.tar [MIRROR]
# mmdebstrap needs no root (it builds inside a user namespace); without it, debootstrap needs root.
set -eu
out="$1"
mirror="${2:-${DEBIAN_MIRROR:-http://deb.debian.org/debian}}"
if command -v mmdebstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then mode=root; else mode=unshare; fi
  exec mmdebstrap --quiet --variant=minbase --mode="$mode" bookworm "$out" "$mirror"
fi
target="$(mktemp -d "${TMPDIR:-/tmp}/skaha-emulator-rootfs.XXXXXX")"
trap 'rm -rf "$target"' EXIT
debootstrap --variant=minbase bookworm "$target" "$mirror" >&2
tar -C "$target" -cf "$out" .
