#!/bin/bash
# skaha's notebook launch script (opencadc/deployments helm/launch-scripts/start-jupyterlab.sh),
# mounted read-only at /skaha-system in every session as skaha mounts its ConfigMap.
mkdir -p "$HOME"
cd "$HOME" || exit 1
mkdir -p "$HOME/.token"
# shellcheck disable=SC2086  # JUPYTERLAB_ARGS is split on purpose, as skaha does
exec jupyter lab --NotebookApp.base_url=session/notebook/$1 \
  --NotebookApp.notebook_dir=/ --NotebookApp.allow_origin="*" \
  --ServerApp.ip=0.0.0.0 --ServerApp.port=8888 --no-browser \
  --ServerApp.base_url=session/notebook/$1 --ServerApp.root_dir=/ \
  --ServerApp.allow_origin="*" ${JUPYTERLAB_ARGS}
