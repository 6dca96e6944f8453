#!/usr/bin/env bash
# all.sh [ENGINE...]: for each engine (default: every one this harness knows), start it and load its
# images (start.sh), walk the core path on it as the user who runs it (run.sh), then stop it (stop.sh),
# and print how long each took. Exit status: non-zero if any engine failed. KEEP_ENGINES=1 leaves them
# running (to look at a failure). `make test-engines` runs this; it must run as root.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root
engines=("$@")
((${#engines[@]})) || engines=("${ENGINES_ALL[@]}")
for engine in "${engines[@]}"; do known_engine "$engine"; done

summary=() failed=0
for engine in "${engines[@]}"; do
  echo "=== $engine ==="
  begin=$SECONDS rc=0
  if host=$("$(dirname "$0")/start.sh" "$engine"); then
    ready=$((SECONDS - begin))
    echo "engines: DOCKER_HOST=$host (started, images in: ${ready}s)"
    "$(dirname "$0")/run.sh" "$engine" || rc=$?
  else
    rc=$? ready=-
  fi
  [ "${KEEP_ENGINES:-}" = 1 ] || "$(dirname "$0")/stop.sh" "$engine" || true
  ((rc)) && failed=1
  summary+=("$(printf '%-16s %-6s start+load %5ss  total %5ss' "$engine" "$( ((rc)) && echo FAILED || echo ok)" "$ready" $((SECONDS - begin)))")
done
echo "=== the core path on each engine ==="
printf '%s\n' "${summary[@]}"
exit "$failed"
