#!/bin/bash
# CANFAR's CARTA start script: configured by the platform's SKAHA_* / CARTA_* environment.
if env | grep -q '^SKAHA_'; then
  prefix=()
  [ -n "${SKAHA_SESSION_URL_PATH:-}" ] && prefix=(--http_url_prefix="${SKAHA_SESSION_URL_PATH}")
  exec carta --no_browser --top_level_folder="${SKAHA_TOP_LEVEL_DIR:-/arc}" --enable_scripting \
    --host=0.0.0.0 --port="${CARTA_PORT:-6901}" --idle_timeout="${CARTA_IDLE_TIMEOUT:-100000}" \
    --debug_no_auth "${prefix[@]}" "${SKAHA_PROJECTS_DIR:-/arc/projects}"
fi
exec carta --no_browser
