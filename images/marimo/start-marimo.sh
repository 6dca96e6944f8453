#!/bin/sh
# Notebooks live in the user's home on /arc, as in every session.
mkdir -p "$HOME/marimo"
cd "$HOME/marimo" || exit 1
exec marimo edit --headless --host 0.0.0.0 --port 5000 --no-token --skip-update-check
