#!/usr/bin/env bash
# run.sh ENGINE [PYTEST ARGS...]: the core path (tests/engines) on ENGINE, started by start.sh, as the user
# who runs that engine. Rootful engines: root, from this checkout's .venv. Rootless engines: their own
# unprivileged user, whose /arc and state these must be; this checkout may not be readable by them, so
# its files (`git ls-files`, uncommitted work included) are copied into their home, and a venv there is
# installed from a wheelhouse in /var/cache/skaha-engines (made once from .venv's packages; reruns are quick).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ENGINE=${1:-}
known_engine "$ENGINE"
shift
need_root
sock=$(engine_socket "$ENGINE" || true)
{ [ -n "$sock" ] && answers "$sock"; } || die "$ENGINE does not answer: run tests/engines/start.sh $ENGINE first"
export DOCKER_HOST=unix://$sock EMULATE_TEST_ENGINE=$ENGINE

if [ "$(engine_user "$ENGINE")" = root ]; then
  cd "$REPO"
  exec "$REPO/.venv/bin/pytest" tests/engines "$@"
fi

# pip reaches PyPI here through a TLS proxy that only the host's CA bundle trusts.
export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
wheelhouse() {  # prints the stamp of what the wheelhouse holds: .venv's packages and pyproject.toml
  local wheels=$CACHE/wheels req=$CACHE/requirements.txt stamp
  mkdir -p "$wheels"
  "$REPO/.venv/bin/pip" freeze --exclude-editable | grep -v '^skaha-emulator' >"$req.new"
  echo 'setuptools>=77' >>"$req.new"  # the editable install's build backend (pip takes it from here too)
  stamp=$(cat "$req.new" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)
  if [ "$(cat "$CACHE/stamp" 2>/dev/null)" != "$stamp" ]; then
    say "filling the wheelhouse $wheels"
    "$REPO/.venv/bin/pip" wheel -q --wheel-dir "$wheels" -r "$req.new" >&2
    echo "$stamp" >"$CACHE/stamp"
  fi
  mv "$req.new" "$req"
  chmod -R a+rX "$CACHE"
  echo "$stamp"
}

user=$(engine_user "$ENGINE")
home=$(getent passwd "$user" | cut -d: -f6)
uid=$(user_uid "$user")
as_user() {
  runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" PATH=/usr/bin:/bin \
    XDG_RUNTIME_DIR="/run/user/$uid" DOCKER_HOST="$DOCKER_HOST" EMULATE_TEST_ENGINE="$ENGINE" "$@"
}

stamp=$(wheelhouse)
src=$home/skaha-emulator
rm -rf "$src" && as_user mkdir -p "$src"
# Tracked and new files of this checkout (not ignored ones: no .venv, no caches); deleted ones are skipped.
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
  as_user tar -xf - -C "$src"
if [ "$(cat "$home/venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "installing the venv of $user"
  rm -rf "$home/venv"
  as_user python3 -m venv "$home/venv"
  as_user env PIP_CONFIG_FILE=/dev/null "$home/venv/bin/pip" install -q --no-index --find-links "$CACHE/wheels" -e "$src[test]" >&2
  echo "$stamp" | as_user tee "$home/venv/.stamp" >/dev/null
fi
cd "$src"
rm -rf "/tmp/pytest-of-$user"  # an earlier run's (or an earlier user's with this name)
rc=0
as_user env PATH="$home/venv/bin:/usr/bin:/bin" "$home/venv/bin/pytest" -p no:cacheprovider tests/engines "$@" || rc=$?
# On rootless Docker the sessions' files in pytest's folders belong to subordinate uids the user cannot
# remove (the very limit test_a_file_written_in_the_session_is_the_host_users reports): root clears them.
rm -rf "/tmp/pytest-of-$user"
exit "$rc"
