#!/bin/sh
# Start the desktop: X server + VNC, the window manager and panel, then noVNC on $NO_VNC_PORT.
# Runs as the session user.
set -u
export DISPLAY=:1
# VNC asks for the session's password, VNC_PW (the session id, which the connect URL hands to noVNC).
# CANFAR's image runs VNC without one (-SecurityTypes None); here the server may be shared by strangers.
security="-SecurityTypes None"
if [ -n "${VNC_PW:-}" ] && printf '%s\n' "$VNC_PW" | vncpasswd -f > /tmp/.vncpasswd && chmod 600 /tmp/.vncpasswd
then
  security="-SecurityTypes VncAuth -PasswordFile /tmp/.vncpasswd"
fi
# X access: only clients holding the desktop's cookie (XAUTHORITY, given to this desktop's own apps);
# without one, open to the session network as skaha's image (`xhost +`). -listen tcp: :1 on port 6001.
access="-ac"
if [ -n "${XAUTHORITY:-}" ] && [ -r "$XAUTHORITY" ]; then access="-auth $XAUTHORITY"; fi
# shellcheck disable=SC2086 # $security and $access are lists of options
Xtigervnc :1 -geometry "${VNC_RESOLUTION:-1280x800}" -depth 24 $security $access \
  -rfbport "${VNC_PORT:-5901}" -listen tcp -AlwaysShared -desktop "${HOSTNAME:-desktop}" &
for _ in $(seq 1 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.05; done
# build-menu.sh writes an Openbox configuration whose menu lists the desktop-app images.
rc="$HOME/.local/skaha/openbox-rc.xml"
if [ -f "$rc" ]; then openbox --config-file "$rc" & else openbox & fi
tint2 >/dev/null 2>&1 &
xterm -geometry 100x30+40+40 -title "terminal" &
exec websockify --web /usr/share/novnc "${NO_VNC_PORT:-6901}" "localhost:${VNC_PORT:-5901}"
