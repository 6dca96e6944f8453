#!/bin/bash
# Start the application, then exec the one argument CANFAR gives: its terminal launcher.
xclock -title '__TITLE__' &
exec "$@"
