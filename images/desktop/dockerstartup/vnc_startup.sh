#!/bin/sh
# Start the desktop: X server + VNC (no VNC password, as CANFAR's image: -SecurityTypes None),
# the window manager and panel, then noVNC on $NO_VNC_PORT. Runs as the session user.
set -u
export DISPLAY=:1
# -ac: no X access control (skaha's image runs `xhost +`); -listen tcp: display :1 on port 6001.
Xtigervnc :1 -geometry "${VNC_RESOLUTION:-1280x800}" -depth 24 -SecurityTypes None \
  -rfbport "${VNC_PORT:-5901}" -listen tcp -ac -AlwaysShared -desktop "${HOSTNAME:-desktop}" &
for _ in $(seq 1 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.05; done
# build-menu.sh writes an Openbox configuration whose menu lists the desktop-app images.
rc="$HOME/.local/skaha/openbox-rc.xml"
if [ -f "$rc" ]; then openbox --config-file "$rc" & else openbox & fi
tint2 >/dev/null 2>&1 &
xterm -geometry 100x30+40+40 -title "terminal" &
exec websockify --web /usr/share/novnc "${NO_VNC_PORT:-6901}" "localhost:${VNC_PORT:-5901}"
