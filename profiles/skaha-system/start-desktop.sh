#!/bin/bash
# skaha's desktop launch script (start-desktop.sh): build the application menu from the skaha API,
# then start the desktop image's own VNC/noVNC startup. $1 is the API host (skaha_hostname).
/skaha-system/build-menu.sh "$1"
exec /dockerstartup/vnc_startup.sh
